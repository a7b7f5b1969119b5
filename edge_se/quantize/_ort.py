"""ONNX Runtime's static quantizer, fed with ranges we computed (no second calibration run).

``quantize_static`` accepts a calibration cache (``calibration_cache_path``, ORT's JSON of
``TensorsData``); we write our :class:`TensorRanges` there as final MinMax ranges, so the
quantizer places Q/DQ and computes scales from exactly our ranges.
"""

from __future__ import annotations

import logging
from edge_se.bundle import owned_tempdir
from pathlib import Path
from typing import Any, Sequence

from edge_se.quantize.ranges import TensorRanges
from edge_se.quantize.weight_params import WeightParams


def quantize_with_ranges(
    model_path: str | Path,
    out_path: str | Path,
    ranges: TensorRanges,
    *,
    activation: str,
    weight: str = "int8",
    per_channel: bool = True,
    reduce_range: bool = False,
    quant_format: str = "qdq",
    activation_symmetric: bool = False,
    op_types: Sequence[str] | None = None,
    nodes_to_exclude: Sequence[str] = (),
    extra_options: dict[str, Any] | None = None,
    weight_params: WeightParams | None = None,
) -> None:
    """Quantize ``model_path`` to ``out_path`` with ONNX Runtime from ``ranges``.

    ``activation``/``weight``: ``"int8"`` or ``"uint8"``; ``quant_format``: ``"qdq"`` or
    ``"qoperator"``. Weights are always symmetric. The output is one self-contained file.
    ``weight_params``: the weight scales of earlier builds of this file (learned from the first),
    handed to ONNX Runtime instead of recomputed (:mod:`edge_se.quantize.weight_params`).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    qtypes = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format]
    options = {
        "ActivationSymmetric": activation_symmetric,
        "WeightSymmetric": True,
        **(extra_options or {}),
    }
    reuse = weight_params if quant_format == "qdq" else None  # overrides are QDQ-quantizer options
    overrides = reuse.overrides(nodes_to_exclude, reduce_range) if reuse is not None else {}
    if overrides:
        options["TensorQuantOverrides"] = overrides
    # ORT logs "Please consider pre-processing" and per-node notes at WARNING: keep stderr clean.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with owned_tempdir("edge-se-quant-") as tmp:
            cache = Path(tmp) / "ranges.json"
            save_tensors_data(ranges.to_ort_tensors_data(), cache)
            quantize_static(
                str(model_path),
                str(out_path),
                calibration_data_reader=None,
                quant_format=fmt,
                op_types_to_quantize=list(op_types) if op_types else None,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=qtypes[activation],
                weight_type=qtypes[weight],
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options=options,
                calibration_cache_path=str(cache),
            )
        if reuse is not None:
            reuse.learn(model_path, out_path, reduce_range)
    finally:
        root.setLevel(level)
