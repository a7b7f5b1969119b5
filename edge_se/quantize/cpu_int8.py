"""CPU-fast INT8 for the embedded ONNX Runtime default (x86 and ARM CPUs).

The format is the one that measured fastest on x86 ONNX Runtime here (docs/quantization.md,
``benchmarks/int8_speed.py``): QDQ, **unsigned** (asymmetric) INT8 activations and **signed**
symmetric per-channel INT8 weights ("U8S8"), every op ONNX Runtime can run quantized
(Conv, Gemm, MatMul, Add, Mul, pooling, Sigmoid, ...). ORT fuses each DQ -> op -> Q group into
its integer kernels (QLinearConv, QLinearAdd, ...) at session load.

``reduce_range`` (7-bit weights) avoids integer saturation on x86 CPUs **without** VNNI
(AVX2-only: ``pmaddubsw`` adds u8 x s8 pairs into int16; measured on an AVX2-only AMD EPYC,
se_resnet18's CPU file lost 6 dB of logit SQNR with 8-bit weights); on VNNI and ARM CPUs it only
costs accuracy. ``None`` (the default) decides from the CPU quantizing (:func:`default_reduce_range`);
the choice is recorded in the manifest, and the runtime refuses to run an 8-bit-weight file on
fused kernels of a CPU that would saturate it (it runs the Q/DQ in FP32 there, and says so).

Spatial means written as ``ReduceMean(axes=[2, 3], keepdims=1)`` on 4-D tensors (how
``x.mean((2, 3), keepdim=True)`` exports: every SE/ECA/CBAM pool of our zoo and timm) are
rewritten to the equivalent ``GlobalAveragePool`` first: ONNX Runtime has no integer ReduceMean,
and the float ReduceMean between NHWC integer convolutions cost 10 ms of 26 ms on se_resnet50
(profiled); ``QLinearGlobalAveragePool`` costs well under 1 ms.
"""

from __future__ import annotations

from edge_se.bundle import owned_tempdir
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from edge_se.quantize._ort import quantize_with_ranges
from edge_se.quantize.ranges import TensorRanges
from edge_se.quantize.weight_params import WeightParams

FORMATS = ("qdq", "qoperator")


def quantize_cpu(
    model_path: str | Path,
    out_path: str | Path,
    ranges: TensorRanges,
    nodes_to_exclude: Sequence[str] = (),
    *,
    reduce_range: bool | None = None,
    quant_format: str = "qdq",
    activation: str = "uint8",
    weight_params: WeightParams | None = None,
) -> dict:
    """Write the CPU-fast INT8 model; returns the settings used (for the manifest);
    ``weight_params``: see :func:`edge_se.quantize._ort.quantize_with_ranges`."""
    if reduce_range is None:
        reduce_range = default_reduce_range()
    model = onnx.load(str(model_path))
    rewritten = spatial_means_to_global_pool(model)
    with owned_tempdir("edge-se-cpu-int8-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(src))
        _quantize(src, out_path, ranges, nodes_to_exclude, reduce_range, quant_format, activation, weight_params)
    return {
        "format": quant_format,
        "activations": f"{activation} asymmetric per-tensor",
        "weights": "int8 symmetric per-channel",
        "reduce_range": reduce_range,
        "reduce_mean_to_global_pool": rewritten,
    }


def default_reduce_range() -> bool:
    """7-bit weights when this CPU's INT8 kernels would saturate 8-bit ones (x86 without VNNI)."""
    from edge_se.runtime.cpu import int8_saturation_risk

    return int8_saturation_risk() is not None


def _quantize(model_path, out_path, ranges, nodes_to_exclude, reduce_range, quant_format, activation,
              weight_params=None) -> None:
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
        weight_params=weight_params,
    )


def spatial_means_to_global_pool(model: onnx.ModelProto) -> int:
    """Rewrite 4-D ``ReduceMean(axes=[2,3] or [-2,-1], keepdims=1)`` to ``GlobalAveragePool`` in
    place (same node name and output tensor); returns how many were rewritten."""
    from edge_se.quantize.patterns import _Graph

    g = _Graph(model)
    if not any(n.op_type == "ReduceMean" for n in g.nodes):
        return 0
    inferred = onnx.shape_inference.infer_shapes(_without_large_floats(model))
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in list(inferred.graph.value_info) + list(inferred.graph.input)
            if v.type.tensor_type.HasField("shape")}
    spatial = [
        i for i, n in enumerate(g.nodes)
        if n.op_type == "ReduceMean" and rank.get(n.input[0]) == 4 and (g.attr(i, "keepdims") in (None, 1))
        and (axes := g.reduce_axes(i)) is not None and sorted(int(np.int64(a) % 4) for a in axes) == [2, 3]
    ]
    for i in spatial:
        n = model.graph.node[i]
        n.CopyFrom(onnx.helper.make_node("GlobalAveragePool", [n.input[0]], list(n.output), name=n.name))
    return len(spatial)


def _without_large_floats(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for shape inference: float initializers of more than 1,024 values become graph
    inputs of the same type and shape (weights never decide a shape; small ones, such as Reshape
    targets, stay), so inference does not copy a 100 MB model's weights on every build."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    big = {i.name: i for i in model.graph.initializer if i.data_type in floats and int(np.prod(i.dims)) > 1024}
    if not big:
        return model
    inputs = {v.name for v in model.graph.input}
    graph = onnx.helper.make_graph(
        list(model.graph.node), model.graph.name,
        list(model.graph.input) + [onnx.helper.make_tensor_value_info(n, i.data_type, list(i.dims))
                                   for n, i in big.items() if n not in inputs],
        list(model.graph.output), [i for i in model.graph.initializer if i.name not in big],
        value_info=list(model.graph.value_info))
    light = onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    light.functions.extend(model.functions)
    return light


__all__ = ["FORMATS", "quantize_cpu"]
