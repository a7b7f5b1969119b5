"""Structure of the two INT8 flavours: TensorRT-ready QDQ and CPU-fast U8S8."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edge_se.quantize.metrics import run_onnx


def _load(bundle, name):
    model = onnx.load(str(bundle.verify(name)))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return model, inits, producer


def test_trt_qdq_pairs_are_symmetric_signed_int8(se_int8_bundle):
    model, inits, _ = _load(se_int8_bundle, "model.int8.trt.onnx")
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8, n.name
        assert not zp.any(), f"{n.name}: zero point {zp} is not 0"


def test_trt_weights_are_quantized_per_channel_on_the_output_axis(se_int8_bundle):
    model, inits, producer = _load(se_int8_bundle, "model.int8.trt.onnx")
    checked = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        dq = producer[node.input[1]]
        assert dq.op_type == "DequantizeLinear", f"{node.name}: weight has no DQ"
        q = producer[dq.input[0]]
        assert q.op_type == "QuantizeLinear" and q.input[0] in inits, "weights stay float behind Q->DQ for TRT 8.x"
        w = inits[q.input[0]]
        axis = {a.name: a.i for a in dq.attribute}.get("axis", 1)
        trans_b = {a.name: a.i for a in node.attribute}.get("transB", 0)
        out_axis = 0 if node.op_type == "Conv" or trans_b else 1
        assert axis == out_axis, node.name
        assert inits[dq.input[1]].shape == (w.shape[out_axis],), node.name
        checked += 1
    assert checked >= 10


def test_trt_residual_add_quantizes_only_the_residual_input(se_int8_bundle):
    model, _, producer = _load(se_int8_bundle, "model.int8.trt.onnx")
    adds = [n for n in model.graph.node if n.op_type == "Add" and len(n.input) == 2 and all(t in producer for t in n.input)]
    residual = [a for a in adds if {producer[t].op_type for t in a.input} & {"Conv"}]
    assert residual, "se_digits has residual MBConv blocks"
    for a in residual:
        kinds = sorted(producer[t].op_type for t in a.input)
        assert kinds == ["Conv", "DequantizeLinear"], f"{a.name}: inputs from {kinds}"


def test_trt_flavour_leaves_sigmoid_and_biases_in_float(se_int8_bundle):
    model, inits, producer = _load(se_int8_bundle, "model.int8.trt.onnx")
    for n in model.graph.node:
        if n.op_type == "Sigmoid":
            assert producer[n.input[0]].op_type != "DequantizeLinear", n.name
        if n.op_type == "Conv" and len(n.input) > 2:
            assert inits[n.input[2]].dtype == np.float32 or producer.get(n.input[2]) is None


def test_trt_flavour_runs_on_onnxruntime_cpu_within_int8_tolerance(se_int8_bundle, small_calib):
    from edge_se.reference.numerics import compare_outputs

    x = small_calib.array()
    ref = run_onnx(se_int8_bundle.verify("model.onnx"), x)
    got = run_onnx(se_int8_bundle.verify("model.int8.trt.onnx"), x)
    assert compare_outputs([ref], [got], "int8")["passed"]
    checks = [c for c in se_int8_bundle.manifest["checks"] if c["artifact"] == "model.int8.trt.onnx"]
    assert checks and all(c["passed"] for c in checks)


def test_cpu_flavour_has_uint8_activations_and_int8_per_channel_weights(se_int8_bundle):
    model, inits, producer = _load(se_int8_bundle, "model.int8.cpu.onnx")
    act_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert act_q and all(inits[q.input[2]].dtype == np.uint8 for q in act_q)
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim == 4]
    assert weight_dq
    for dq in weight_dq:
        assert inits[dq.input[1]].shape == (inits[dq.input[0]].shape[0],)
        assert not inits[dq.input[2]].any()


def test_cpu_flavour_quantizes_the_gates_under_policy_all(se_int8_bundle):
    model, _, producer = _load(se_int8_bundle, "model.int8.cpu.onnx")
    sig = [n for n in model.graph.node if n.op_type == "Sigmoid"]
    assert any(producer[n.input[0]].op_type == "DequantizeLinear" for n in sig)


def test_both_flavours_come_from_the_same_ranges(export_cached, small_calib, tmp_path):
    """With one range method for both files (``--method minmax``; ``auto`` chooses per file), the
    TRT scale of a tensor is its CPU range made symmetric: same (lo, hi) behind both."""
    import shutil

    from edge_se.bundle import Bundle
    from edge_se.quantize.ranges import load_ranges
    from edge_se.quantize.stage import quantize_int8
    from edge_se.quantize.trt_cache import symmetric_scale

    shutil.copytree(export_cached("se_digits", (1, 1, 32, 32)).root, tmp_path / "se")
    bundle = quantize_int8(Bundle.open(tmp_path / "se"), small_calib, policy="all", method="minmax")
    ranges = load_ranges(bundle.root / "model.int8.ranges.json")
    model, inits, _ = _load(bundle, "model.int8.cpu.onnx")
    checked = 0
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        if q.input[0] not in ranges.ranges:
            continue
        lo, hi = ranges.ranges[q.input[0]]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        assert float(inits[q.input[1]]) == np.float32((np.float64(np.float32(hi)) - np.float64(np.float32(lo))) / 255)
        checked += 1
    assert checked >= 10
    assert symmetric_scale(-1.0, 0.5) == np.float32(2.0 / 254)


def test_int8_models_keep_the_fp32_input_and_output_types(se_int8_bundle):
    for name in ("model.int8.cpu.onnx", "model.int8.trt.onnx"):
        model = onnx.load(str(se_int8_bundle.verify(name)))
        for v in list(model.graph.input) + list(model.graph.output):
            assert v.type.tensor_type.elem_type == TensorProto.FLOAT, (name, v.name)


def test_cpu_flavour_turns_spatial_means_into_global_average_pools(se_int8_bundle, small_calib):
    import onnxruntime as ort

    from edge_se.quantize.cpu_int8 import spatial_means_to_global_pool

    fp32 = onnx.load(str(se_int8_bundle.verify("model.onnx")))
    means = [n for n in fp32.graph.node if n.op_type == "ReduceMean"]
    rewritten = onnx.load(str(se_int8_bundle.verify("model.onnx")))
    count = spatial_means_to_global_pool(rewritten)
    assert count == 5  # the five SE pools (keepdim); the head's mean without keepdim stays
    assert sum(n.op_type == "ReduceMean" for n in rewritten.graph.node) == len(means) - 5
    x = small_calib.array()
    a, b = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for m in (fp32, rewritten))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert se_int8_bundle.artifact("model.int8.cpu.onnx")["int8"]["reduce_mean_to_global_pool"] == 5
