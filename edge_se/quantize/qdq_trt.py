"""TensorRT-ready explicit INT8: a QDQ ONNX model that TensorRT fuses into INT8 kernels.

Placement follows NVIDIA's explicit-quantization guide (and what NVIDIA ModelOpt's
``modelopt.onnx.quantization`` produces, which we checked on ResNet-50; docs/quantization.md):

* Q/DQ on the **inputs** of weighted ops (Conv, ConvTranspose, Gemm, MatMul): the activation
  per-tensor, the weight per-channel on the output axis (Conv 0, ConvTranspose 1, Gemm 0 with
  ``transB=1`` else 1, MatMul 1). Weights stay FP32 behind a Q->DQ pair (TensorRT 8.x needs it).
* residual ``Add``: Q/DQ only on the **residual** input, none on the input coming from a Conv,
  so TensorRT fuses "Conv + Add" into one INT8 kernel.
* pooling (MaxPool, AveragePool, GlobalAveragePool) inputs quantized; no op's output is.
* all scales symmetric signed INT8 (zero point 0), biases left in float (TensorRT fuses them).

Sigmoid/Softmax and the gates' Mul are never given Q/DQ here: TensorRT runs them in float;
the precision policy (keep-gates/auto) decides about the gates' Conv/Gemm layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import onnx

from edge_se.quantize._ort import quantize_with_ranges
from edge_se.quantize.ranges import TensorRanges
from edge_se.quantize.weight_params import WeightParams

TRT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool")
FUSIBLE_PRODUCERS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"})


def quantize_trt(
    model_path: str | Path,
    out_path: str | Path,
    ranges: TensorRanges,
    nodes_to_exclude: Sequence[str] = (),
    weight_params: WeightParams | None = None,
) -> dict:
    """Write the TensorRT-ready QDQ model; returns a summary (Q/DQ counts, removed residual pairs);
    ``weight_params``: see :func:`edge_se.quantize._ort.quantize_with_ranges`."""
    model = onnx.load(str(model_path), load_external_data=False)
    op_types = sorted({n.op_type for n in model.graph.node})
    quantize_with_ranges(
        model_path,
        out_path,
        ranges,
        activation="int8",
        weight="int8",
        per_channel=True,
        activation_symmetric=True,
        op_types=TRT_OP_TYPES,
        nodes_to_exclude=nodes_to_exclude,
        extra_options={
            "QuantizeBias": False,
            "AddQDQPairToWeight": True,
            "OpTypesToExcludeOutputQuantization": op_types,
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
            "DedicatedQDQPair": False,
            "ForceQuantizeNoInputCheck": True,
            "QDQDisableWeightAdjustForInt32Bias": True,
        },
        weight_params=weight_params,
    )
    qmodel = onnx.load(str(out_path))
    removed = remove_fusible_add_inputs(qmodel)
    onnx.save_model(qmodel, str(out_path))
    counts = {op: sum(n.op_type == op for n in qmodel.graph.node) for op in ("QuantizeLinear", "DequantizeLinear")}
    return {**counts, "residual_add_inputs_unquantized": removed}


def remove_fusible_add_inputs(model: onnx.ModelProto) -> int:
    """Drop the Q/DQ on each Add input that comes from a Conv-like op (TensorRT fuses it).

    Only when the other input is quantized too: an Add with one DQ input keeps it. Q/DQ nodes left
    without consumers are removed. Returns the number of Add inputs rewired.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for add in [n for n in g.node if n.op_type == "Add" and len(n.input) == 2]:
        dqs = [producer.get(t) for t in add.input]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in dqs):
            continue
        qs = [producer.get(d.input[0]) for d in dqs]
        if not all(q is not None and q.op_type == "QuantizeLinear" for q in qs):
            continue
        sources = [producer.get(q.input[0]) for q in qs]
        fusible = [s is not None and s.op_type in FUSIBLE_PRODUCERS for s in sources]
        if not any(fusible):
            continue
        k = fusible.index(True)
        add.input[k] = qs[k].input[0]
        rewired += 1
    _drop_dead_qdq(model)
    return rewired


def _drop_dead_qdq(model: onnx.ModelProto) -> None:
    g = model.graph
    outputs = {o.name for o in g.output}
    while True:
        used = {t for n in g.node for t in n.input} | outputs
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in used]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {t for n in g.node for t in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)


__all__ = ["TRT_OP_TYPES", "quantize_trt", "remove_fusible_add_inputs"]
