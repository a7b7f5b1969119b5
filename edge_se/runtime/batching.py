"""Input checks and batch planning: what a model accepts, and how a batch is fitted to it.

A dynamic-batch model takes any batch within its range (ONNX Runtime: 1 and up; a TensorRT
engine: its optimization profile); a batch outside the range is refused. A static-batch model
of batch ``B`` gets any batch: it is split into chunks of ``B`` and the last chunk is padded
with zeros; the padded rows are dropped from the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_se.errors import InputError
from edge_se.runtime.backends.base import TensorSpec


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


def plan_batch(n: int, spec: TensorSpec) -> BatchPlan:
    """Fit a batch of ``n`` to ``spec``: split/pad for a static batch, range check for a dynamic one."""
    static = spec.static_batch
    if static is not None:
        if n == static:
            return BatchPlan(n, n, 0)
        return BatchPlan(n, static, (-n) % static)
    lo, hi = spec.batch_range
    if n < lo or (hi is not None and n > hi):
        top = "inf" if hi is None else str(hi)
        raise InputError(
            f"input '{spec.name}': batch {n} is outside the model's batch range [{lo}, {top}] "
            "(the engine's optimization profile); pass batches within the range or rebuild the engine "
            "with a larger profile"
        )
    return BatchPlan(n, n, 0)


def chunks(feeds: dict[str, np.ndarray], plan: BatchPlan):
    """Yield feed dicts of ``plan.chunk`` rows each; the last one zero-padded."""
    for start in range(0, plan.n, plan.chunk):
        part = {k: v[start:start + plan.chunk] for k, v in feeds.items()}
        short = plan.chunk - next(iter(part.values())).shape[0]
        if short:
            part = {k: np.concatenate([v, np.zeros((short, *v.shape[1:]), v.dtype)]) for k, v in part.items()}
        yield part
