"""Input checks and batch planning: what a model accepts, and how a batch is fitted to it.

A dynamic-batch model takes any batch within its range (ONNX Runtime: 1 and up; a TensorRT
engine: its optimization profile); :func:`plan_batch` refuses a batch outside the range unless
told to split it (``split=True``, what the runtime does): a batch above the range's top (or
above ``max_rows``, a memory bound) then runs in chunks of at most that many rows. A
static-batch model of batch ``B`` gets any batch: it is split into chunks of ``B`` and the last
chunk is padded with zeros; the padded rows are dropped from the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_se.errors import InputError
from edge_se.runtime.backends.base import TensorSpec


#: The most bytes one inference call's inputs may take: ``Runtime.run`` splits a larger batch of a
#: dynamic-batch model into chunks within it, and ``example_inputs`` (``edge-se bench``) refuses it.
MAX_INPUT_BYTES = 1 << 30


def format_bytes(n: float) -> str:
    """``n`` bytes in B, KiB, MiB, GiB or TiB, e.g. ``8.9 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def rows_within(row_bytes: int, limit: int | None = None) -> int:
    """How many rows of ``row_bytes`` each fit in ``limit`` bytes (default :data:`MAX_INPUT_BYTES`), at least 1."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    return max(1, int(limit) // max(1, int(row_bytes)))


def _shape(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def check_input(array: object, spec: TensorSpec) -> np.ndarray:
    """Refuse an array whose rank, non-batch dims or dtype differ from ``spec`` (one-line error)."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"input '{spec.name}': expected a numpy array, got {type(array).__name__}")
    if array.ndim != len(spec.shape):
        hint = "; add a batch dimension with x[None]" if array.ndim == len(spec.shape) - 1 else ""
        raise InputError(
            f"input '{spec.name}': expected rank {len(spec.shape)} {_shape(spec.shape)}, "
            f"got rank {array.ndim} {list(array.shape)}{hint}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
        if axis > 0 and want is not None and want != got:
            raise InputError(
                f"input '{spec.name}': expected shape {_shape(spec.shape)}, got {list(array.shape)} "
                f"(dim {axis} should be {want})"
            )
    if array.shape and array.shape[0] == 0:
        raise InputError(f"input '{spec.name}': got an empty batch (shape {list(array.shape)})")
    if array.dtype != spec.dtype:
        raise InputError(
            f"input '{spec.name}': expected dtype {spec.dtype.name}, got {array.dtype.name}; "
            f"convert with x.astype(np.{spec.dtype.name})"
        )
    return array


@dataclass(frozen=True)
class BatchPlan:
    """How a batch of ``n`` runs: ``chunk`` rows at a time, the last chunk padded by ``pad`` rows."""

    n: int
    chunk: int
    pad: int

    @property
    def direct(self) -> bool:
        return self.chunk == self.n and self.pad == 0


def plan_batch(n: int, spec: TensorSpec, *, split: bool = False, max_rows: int | None = None) -> BatchPlan:
    """Fit a batch of ``n`` to ``spec``: split/pad for a static batch, range check for a dynamic one.

    ``split=True``: a dynamic batch above the range's top or above ``max_rows`` is split into
    chunks of at most that many rows (the last one zero-padded up to the range's bottom).
    """
    static = spec.static_batch
    if static is not None:
        if n == static:
            return BatchPlan(n, n, 0)
        return BatchPlan(n, static, (-n) % static)
    lo, hi = spec.batch_range
    if split and n >= lo:
        cap = min(c for c in (hi, max_rows, n) if c is not None)
        cap = max(cap, lo)
        if cap < n:
            rest = n % cap
            return BatchPlan(n, cap, lo - rest if 0 < rest < lo else 0)
    if n < lo or (hi is not None and n > hi):
        top = "inf" if hi is None else str(hi)
        raise InputError(
            f"input '{spec.name}': batch {n} is outside the model's batch range [{lo}, {top}] "
            "(the engine's optimization profile); pass batches within the range or rebuild the engine "
            "with a larger profile"
        )
    return BatchPlan(n, n, 0)


def chunks(feeds: dict[str, np.ndarray], plan: BatchPlan):
    """Yield feed dicts of ``plan.chunk`` rows each; the last one zero-padded by ``plan.pad`` rows."""
    for start in range(0, plan.n, plan.chunk):
        part = {k: v[start:start + plan.chunk] for k, v in feeds.items()}
        short = plan.pad if start + plan.chunk >= plan.n else 0
        if short:
            part = {k: np.concatenate([v, np.zeros((short, *v.shape[1:]), v.dtype)]) for k, v in part.items()}
        yield part
