"""CPU-fast INT8 for the embedded ONNX Runtime default (x86 and ARM CPUs).

The format is the one that measured fastest on x86 ONNX Runtime here (docs/quantization.md,
``benchmarks/int8_speed.py``): QDQ, **unsigned** (asymmetric) INT8 activations and **signed**
symmetric per-channel INT8 weights ("U8S8"), every op ONNX Runtime can run quantized
(Conv, Gemm, MatMul, Add, Mul, pooling, Sigmoid, ...). ORT fuses each DQ -> op -> Q group into
its integer kernels (QLinearConv, QLinearAdd, ...) at session load.

``reduce_range`` (7-bit weights) avoids integer saturation on x86 CPUs **without** VNNI
(AVX2-only); on VNNI CPUs (this machine: AVX-512 VNNI) it only costs accuracy, so it is off by
default and recorded in the manifest when set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edge_se.quantize._ort import quantize_with_ranges
from edge_se.quantize.ranges import TensorRanges

FORMATS = ("qdq", "qoperator")


def quantize_cpu(
    model_path: str | Path,
    out_path: str | Path,
    ranges: TensorRanges,
    nodes_to_exclude: Sequence[str] = (),
    *,
    reduce_range: bool = False,
    quant_format: str = "qdq",
    activation: str = "uint8",
) -> dict:
    """Write the CPU-fast INT8 model; returns the settings used (for the manifest)."""
    quantize_with_ranges(
        model_path,
        out_path,
        ranges,
        activation=activation,
        weight="int8",
        per_channel=True,
        reduce_range=reduce_range,
        quant_format=quant_format,
        activation_symmetric=False,
        nodes_to_exclude=nodes_to_exclude,
    )
    return {
        "format": quant_format,
        "activations": f"{activation} asymmetric per-tensor",
        "weights": "int8 symmetric per-channel",
        "reduce_range": reduce_range,
    }


__all__ = ["FORMATS", "quantize_cpu"]
