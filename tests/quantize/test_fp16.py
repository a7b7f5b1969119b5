"""FP16 conversion: overflow-prone ops stay FP32 by rule, I/O stays FP32, numerics within FP16 tolerance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edge_se.quantize.fp16 import FP32_OPS, convert_fp16


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    vis = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in vis}


@pytest.fixture(scope="module")
def simam_fp16(export_cached, tmp_path_factory):
    """simam_digits has ReduceMean, Pow, Div and Sigmoid: the FP16 overflow suspects."""
    bundle = export_cached("simam_digits", (1, 1, 32, 32))
    out = tmp_path_factory.mktemp("fp16") / "m.fp16.onnx"
    info = convert_fp16(bundle.verify("model.onnx"), out)
    return bundle, onnx.load(str(out)), info


def test_blocked_ops_compute_in_fp32(simam_fp16):
    _, model, info = simam_fp16
    types = _elem_types(model)
    blocked = [n for n in model.graph.node if n.op_type in FP32_OPS]
    assert blocked and info["kept_fp32_nodes"]
    for n in blocked:
        for t in list(n.input[:1]) + list(n.output):
            assert types.get(t) == TensorProto.FLOAT, f"{n.op_type} {n.name}: {t} is not FP32"


def test_convolutions_compute_in_fp16(simam_fp16):
    _, model, _ = simam_fp16
    types = _elem_types(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(types.get(n.output[0]) == TensorProto.FLOAT16 for n in convs)


def test_inputs_and_outputs_stay_fp32_by_default(simam_fp16):
    _, model, _ = simam_fp16
    for v in list(model.graph.input) + list(model.graph.output):
        assert v.type.tensor_type.elem_type == TensorProto.FLOAT


def test_nodes_are_topologically_sorted(simam_fp16):
    _, model, _ = simam_fp16
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    for n in model.graph.node:
        assert all(t in available for t in n.input), n.name
        available.update(n.output)


def test_fp16_io_option_makes_the_input_fp16(export_cached, tmp_path):
    bundle = export_cached("simam_digits", (1, 1, 32, 32))
    convert_fp16(bundle.verify("model.onnx"), tmp_path / "m.onnx", keep_io_types=False)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16


def test_fp16_model_matches_fp32_within_fp16_tolerance(simam_fp16, small_calib):
    from edge_se.quantize.metrics import run_onnx
    from edge_se.reference.numerics import compare_outputs

    bundle, model, _ = simam_fp16
    x = small_calib.array()
    ref = run_onnx(bundle.verify("model.onnx"), x)
    got = run_onnx(_session(model), x)
    result = compare_outputs([ref], [got], "fp16")
    assert result["passed"], result["reason"]
    assert np.abs(ref - got).max() > 0  # it really ran in reduced precision


def _session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
