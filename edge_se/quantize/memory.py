"""How much memory a quantize run may use, and the batch sizes that keep it there.

The quantize stage's memory is dominated by batches, never by the number of images: calibration
runs the FP32 model with every activation tensor as an output (``collect_statistics``), GPTQ with
every Conv/Gemm input as an output, and every evaluation (range choice, ``auto``, fine-tuning's
check, the accuracy check) runs a model over the selection set. :func:`plan` estimates, from the
model's shapes, the bytes one sample costs in each of these, subtracts what stays resident (the
model, the selection set, GPTQ's ``X^T X`` per layer) from the limit, and picks the largest batch
that fits, capped where bigger batches stop being faster. When one sample does not fit, it raises
:class:`MemoryLimitError` naming the limit that would.

The factors below were measured on se_resnet50 at 1x3x224x224 (ONNX Runtime 1.2x CPU, AMD EPYC):
calibrating costs ~2.3x the summed activation bytes per sample (ONNX Runtime's buffers plus the
outputs handed to Python plus the histogram's temporaries); an outputs-only run costs ~7.5x the
largest activation per sample. Evaluation batches apply through :func:`eval_batch`, which
:func:`edge_se.quantize.metrics.run_onnx` reads when no batch is given.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edge_se.errors import InputError

DEFAULT_FRACTION = 0.5      # of the memory available when the run starts
CALIB_FACTOR = 2.5          # RSS per calibration sample / summed activation bytes (measured 2.25)
EVAL_FACTOR = 8.0           # RSS per evaluated sample / largest activation bytes (measured 7.5)
GPTQ_FACTOR = 2.5           # RSS per GPTQ sample / (summed layer inputs + largest im2col patch)
CALIB_BATCH_BYTES = 256e6   # past this many activation bytes per batch, bigger batches only cost memory
EVAL_BATCH_BYTES = 512e6    # the same for evaluation (se_resnet50: batch 16 ran as fast as 256 in 1/7 the memory)
MAX_CALIB_BATCH = 32
MAX_EVAL_BATCH = 256
MAX_GPTQ_CHUNK = 8
_DEFAULT_EVAL_BATCH = 64    # run_onnx outside a planned run
_FALLBACK_AVAILABLE = 8 << 30  # where the OS does not say how much memory is available
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class MemoryLimitError(InputError):
    """One sample of the run does not fit in the memory limit."""


@dataclass(frozen=True)
class MemoryPlan:
    """Batch sizes for one quantize run under ``limit`` bytes, with what they were derived from."""

    limit: int
    limit_source: str
    resident: int           # the process so far + model + selection set + GPTQ moments
    calib_per_sample: int
    eval_per_sample: int
    gptq_per_sample: int
    calib_batch: int
    eval_batch: int
    gptq_chunk: int

    def describe(self) -> str:
        """One line for the progress output."""
        return (f"memory limit {fmt_bytes(self.limit)} ({self.limit_source}): calibrating {self.calib_batch} "
                f"sample(s) at a time (~{fmt_bytes(self.calib_per_sample)} each), evaluating {self.eval_batch} at a "
                f"time, GPTQ {self.gptq_chunk} at a time; expected peak {fmt_bytes(self.predicted_peak)}")

    @property
    def predicted_peak(self) -> int:
        """The estimate of the run's peak: what stays resident plus the largest planned batch."""
        return self.resident + max(self.calib_batch * self.calib_per_sample, self.eval_batch * self.eval_per_sample,
                                   self.gptq_chunk * self.gptq_per_sample)

    def to_dict(self) -> dict[str, Any]:
        return {"limit_bytes": self.limit, "limit": self.limit_source, "resident_bytes": self.resident,
                "predicted_peak_bytes": self.predicted_peak,
                "per_sample_bytes": {"calibrate": self.calib_per_sample, "evaluate": self.eval_per_sample,
                                     "gptq": self.gptq_per_sample},
                "batch": {"calibrate": self.calib_batch, "evaluate": self.eval_batch, "gptq": self.gptq_chunk}}


def parse_size(text: str, what: str = "--max-memory") -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"``, ``"800MB"`` or a byte count -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"{what} {text!r} is not a size; use e.g. 4G, 1.5G or 800M")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def available_bytes() -> int:
    """Memory this process can still get: MemAvailable, capped by a cgroup v2/v1 limit if set."""
    avail = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # no such sysconf name (macOS, Windows)
            avail = _FALLBACK_AVAILABLE
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):
            cap = int(Path(limit_file).read_text().strip())
            if cap < 1 << 60:
                avail = min(avail, cap - int(Path(usage_file).read_text().strip()))
    return max(int(avail), 0)


def process_rss() -> int:
    """This process's resident memory now (Python, numpy, ONNX Runtime, torch if imported)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _per_sample(shape: list[int | None] | None, fallback: int) -> int:
    """float32 bytes of one sample of a tensor (dim 0 is the batch); unknown dims -> ``fallback``."""
    if shape is None or not shape or any(d is None for d in shape[1:]):
        return fallback
    return 4 * int(np.prod([d for d in shape[1:]], dtype=np.int64))


def plan(model_path: str | Path, *, eval_samples: int, limit: int | None = None, gptq: bool = True) -> MemoryPlan:
    """The batch sizes for quantizing ``model_path`` (FP32 ONNX) with a selection set of
    ``eval_samples`` samples under ``limit`` bytes (default: :data:`DEFAULT_FRACTION` of what is
    available now). Raises :class:`MemoryLimitError` when one sample of some phase does not fit."""
    import onnx

    from edge_se.quantize.gptq import _layers, patch_bytes
    from edge_se.quantize.ranges import activation_tensors, tensor_infos

    if limit is None:
        avail = available_bytes()
        limit, source = int(avail * DEFAULT_FRACTION), f"half of the {fmt_bytes(avail)} available; set --max-memory"
    else:
        source = "--max-memory"
    model = onnx.load(str(model_path), load_external_data=False)
    infos = tensor_infos(model)  # one shape inference for both the tensor list and their sizes
    shapes = {name: dims for name, (_, dims) in infos.items() if dims is not None}
    names = activation_tensors(model, infos)
    sizes = {n: _per_sample(shapes.get(n), 0) for n in names}
    known = [s for s in sizes.values() if s]
    largest = max(known, default=4)
    sizes = {n: s or largest for n, s in sizes.items()}  # an unknown shape counts as the largest known one
    input_bytes = sizes.get(model.graph.input[0].name, largest)

    calib = int(CALIB_FACTOR * sum(sizes.values()))
    evaluate = int(EVAL_FACTOR * largest + input_bytes)
    layers = _layers(model) if gptq else []
    gptq_sample = int(GPTQ_FACTOR * (sum(sizes.get(ly.x, largest) for ly in layers)
                                     + max((patch_bytes(ly, shapes) for ly in layers), default=0)))
    moments = [ly.moment_bytes(shapes) for ly in layers]
    model_bytes = 3 * Path(model_path).stat().st_size  # the proto, ONNX Runtime's copy, one quantized copy
    # every layer's X^T X, plus rounding's copies (inverse, Cholesky factor, ...) of the largest one
    resident = (process_rss() + model_bytes + eval_samples * input_bytes + sum(moments)
                + 4 * max(moments, default=0))

    free = limit - resident
    need = {"calibration (every activation tensor of one sample)": calib, "evaluation": evaluate}
    if layers:
        need["GPTQ (every Conv/Gemm input of one sample)"] = gptq_sample
    what, worst = max(need.items(), key=lambda kv: kv[1])
    if free < worst:
        raise MemoryLimitError(
            f"quantizing {Path(model_path).parent.name}/{Path(model_path).name} needs about {fmt_bytes(resident + worst)} "
            f"({fmt_bytes(resident)} resident: this process, the model, {eval_samples} selection samples"
            f"{', GPTQ moments' if layers else ''}; "
            f"{fmt_bytes(worst)} for {what}) but the limit is {fmt_bytes(limit)} ({source}); "
            f"pass --max-memory {_round_up_g(resident + worst)} or more, use a smaller --eval set, or free memory")
    calib_batch = _fit(free, calib, min(MAX_CALIB_BATCH, max(1, int(CALIB_BATCH_BYTES // max(sum(sizes.values()), 1)))))
    return MemoryPlan(limit=limit, limit_source=source, resident=resident, calib_per_sample=calib,
                      eval_per_sample=evaluate, gptq_per_sample=gptq_sample, calib_batch=calib_batch,
                      eval_batch=_fit(free, evaluate, min(MAX_EVAL_BATCH, max(1, int(EVAL_BATCH_BYTES // evaluate)))),
                      gptq_chunk=_fit(free, gptq_sample, MAX_GPTQ_CHUNK) if layers else MAX_GPTQ_CHUNK)


def _fit(free: int, per_sample: int, cap: int) -> int:
    return int(max(1, min(cap, free // max(per_sample, 1))))


def _round_up_g(n: int) -> str:
    return f"{np.ceil(n / (1 << 30) * 10) / 10:.1f}G"


_CURRENT: contextvars.ContextVar[MemoryPlan | None] = contextvars.ContextVar("edge_se_memory_plan", default=None)


@contextlib.contextmanager
def planned(p: MemoryPlan) -> Iterator[MemoryPlan]:
    """Make ``p``'s evaluation batch the default of every model run inside the block."""
    token = _CURRENT.set(p)
    try:
        yield p
    finally:
        _CURRENT.reset(token)


def eval_batch() -> int:
    """The evaluation batch of the active plan (:func:`planned`), else a moderate default."""
    p = _CURRENT.get()
    return p.eval_batch if p is not None else _DEFAULT_EVAL_BATCH


def gptq_chunk() -> int:
    p = _CURRENT.get()
    return p.gptq_chunk if p is not None else MAX_GPTQ_CHUNK


__all__ = ["DEFAULT_FRACTION", "MemoryLimitError", "MemoryPlan", "available_bytes", "eval_batch", "fmt_bytes",
           "gptq_chunk", "parse_size", "plan", "planned"]
