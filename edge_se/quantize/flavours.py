"""The two INT8 flavours as builders ``(fp32 path, out path, nodes kept float) -> None``.

One place decides how an INT8 file is made from one calibration run, so the quantize stage,
the ``auto`` policy's probes, the validation matrix and the benchmarks build the same files:
ranges from :mod:`edge_se.quantize.ranges`, weights rounded by GPTQ
(:mod:`edge_se.quantize.gptq`) unless ``weights`` is ``None`` (round-to-nearest), and the
layers a policy keeps in float keeping their original weights.
"""

from __future__ import annotations

from edge_se.bundle import owned_tempdir
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge_se.quantize.ranges import TensorRanges
from edge_se.quantize.weight_params import WeightParams

#: artifact flavour -> builder(src, out, nodes to keep float)
Builder = Callable[[Path, Path, Sequence[str]], None]
FLAVOURS = ("cpu", "trt")
WEIGHT_ROUNDINGS = ("gptq", "nearest")
DEFAULT_WEIGHT_ROUNDING = "gptq"


def builder(flavour: str, ranges: TensorRanges, weights: dict[str, np.ndarray] | None = None, *,
            reduce_range: bool | None = None, params: WeightParams | None = None) -> Builder:
    """The builder of ``flavour`` (``cpu``: CPU-fast U8S8 QDQ; ``trt``: TensorRT-ready QDQ).
    ``params``: the weight scales shared by the builds of this flavour with these ``weights``
    (learned on the first, reused by the others; ``None``: each build computes its own)."""
    from edge_se.quantize.cpu_int8 import quantize_cpu
    from edge_se.quantize.gptq import with_weights
    from edge_se.quantize.qdq_trt import quantize_trt

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown INT8 flavour {flavour!r}; expected one of {FLAVOURS}")

    def quantize(src: Path, out: Path, keep: Sequence[str]) -> dict:
        if flavour == "cpu":
            return quantize_cpu(src, out, ranges, list(keep), reduce_range=reduce_range, weight_params=params)
        return quantize_trt(src, out, ranges, list(keep), weight_params=params)

    def build(src: Path, out: Path, keep: Sequence[str]) -> dict:
        if not weights:
            return quantize(src, out, keep)
        with owned_tempdir("edge-se-gptq-") as tmp:
            rounded = with_weights(src, Path(tmp) / "model.onnx", weights, keep)
            return quantize(rounded, out, keep)

    return build


#: the range methods ``--method auto`` measures for each INT8 file: (name, percentile)
AUTO_CANDIDATES = (("minmax", None), ("mse", None), ("percentile", 99.999))
AUTO_SAMPLES = 2048


def choose_ranges(flavour: str, stats, weights: dict[str, np.ndarray] | None, src: Path, x: np.ndarray, *,
                  reduce_range: bool | None = None, ref: np.ndarray | None = None,
                  params: WeightParams | None = None):
    """``--method auto``: the activation ranges (of :data:`AUTO_CANDIDATES`) whose fully quantized
    ``flavour`` file has the highest logit SQNR against the FP32 model on (at most
    :data:`AUTO_SAMPLES` of) ``x`` (``ref``: the FP32 outputs on ``x`` when already computed;
    ``params``: as for :func:`builder`);
    returns ``(ranges, report)``. Label-free: it measures the file
    that will be deployed, not a proxy, because no one method wins everywhere (on the digits nets:
    MSE on SE's TensorRT file, +3.6 dB over MinMax; MinMax on CBAM's CPU file, +4.1 dB over MSE)."""
    from edge_se.quantize.metrics import run_onnx
    from edge_se.reference.metrics import sqnr_db

    x = x[:AUTO_SAMPLES]
    ref = run_onnx(src, x) if ref is None else ref[:AUTO_SAMPLES]
    scores: dict[str, float] = {}
    best = None
    with owned_tempdir("edge-se-method-") as tmp:
        for method, pct in AUTO_CANDIDATES:
            ranges = stats.ranges(method, pct) if pct is not None else stats.ranges(method)
            label = method if pct is None else f"{method} {pct:g}"
            out = Path(tmp) / "probe.onnx"
            builder(flavour, ranges, weights, reduce_range=reduce_range, params=params)(src, out, [])
            scores[label] = round(sqnr_db(ref, run_onnx(out, x)), 3)
            if best is None or scores[label] > scores[best[0]]:
                best = (label, ranges)
    return best[1], {"chosen": best[0], "sqnr_db": scores, "measured_on": f"{len(x)} samples, fully quantized file"}


def check_weight_rounding(rounding: str) -> str:
    from edge_se.errors import InputError

    if rounding not in WEIGHT_ROUNDINGS:
        raise InputError(f"unknown weight rounding {rounding!r}; expected one of {', '.join(WEIGHT_ROUNDINGS)}")
    return rounding


def rounded_weights(rounding: str, model_path: Path, batches, *,
                    reduce_range: bool | None = None) -> dict[str, dict[str, np.ndarray] | None]:
    """Each flavour's weights (``{flavour: weights}``, for :func:`builder` and :func:`choose_ranges`):
    GPTQ for ``rounding == "gptq"``, ``None`` (round-to-nearest) for ``"nearest"``. GPTQ rounds on
    the grid the file's quantizer uses: the CPU file's is 7-bit where ``reduce_range`` (``None``:
    this CPU's default, as the CPU builder decides it), the TensorRT file's always 8-bit."""
    if check_weight_rounding(rounding) == "nearest":
        return {fl: None for fl in FLAVOURS}
    from edge_se.quantize.cpu_int8 import default_reduce_range
    from edge_se.quantize.gptq import QMAX, QMAX_REDUCED, gptq_grids

    reduced = default_reduce_range() if reduce_range is None else reduce_range
    cpu = QMAX_REDUCED if reduced else QMAX
    grids = gptq_grids(model_path, batches, sorted({QMAX, cpu}))
    return {"cpu": grids[cpu], "trt": grids[QMAX]}


__all__ = ["AUTO_CANDIDATES", "DEFAULT_WEIGHT_ROUNDING", "choose_ranges", "FLAVOURS", "WEIGHT_ROUNDINGS", "builder", "check_weight_rounding",
           "rounded_weights"]
