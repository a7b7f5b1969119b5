"""GPTQ weight rounding: the grid every quantizer uses, the output error it minimises, the patches
it measures, and the INT8 files carrying exactly its weights."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edge_se.quantize import flavours
from edge_se.quantize.gptq import _layers, _patches, gptq_weights, round_rows
from edge_se.quantize.ranges import collect_statistics


def _rtn(w):
    s = np.abs(w).max(axis=-1, keepdims=True) / 127
    return np.clip(np.rint(w / s), -127, 127), s[..., 0]


def test_rounding_stays_on_the_per_channel_grid_and_pins_each_row_maximum():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 6, 20))
    x = rng.normal(size=(500, 20)) @ rng.normal(size=(20, 20))
    h = np.stack([x.T @ x / len(x)] * 2)
    q, scale = round_rows(w, h)
    assert np.array_equal(q, np.rint(q)) and np.abs(q).max() <= 127
    np.testing.assert_allclose(scale, np.abs(w).max(axis=2) / 127)
    assert (np.abs(q).max(axis=2) == 127).all()  # so a quantizer recomputes the same scale
    top = np.abs(w).argmax(axis=2)[..., None]
    np.testing.assert_array_equal(np.take_along_axis(q, top, 2), np.rint(np.take_along_axis(w, top, 2) / scale[..., None]))


def test_lazy_block_updates_equal_column_by_column_updates():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 5, 40))
    x = rng.normal(size=(300, 40)) @ rng.normal(size=(40, 40))
    h = np.stack([x.T @ x / len(x)] * 3)
    q1, s1 = round_rows(w, h, block=1)
    for block in (7, 16, 1000):
        qb, sb = round_rows(w, h, block=block)
        np.testing.assert_array_equal(qb, q1)
        np.testing.assert_array_equal(sb, s1)


def test_uncorrelated_inputs_give_round_to_nearest():
    w = np.random.default_rng(1).normal(size=(1, 8, 12))
    q, _ = round_rows(w, np.eye(12)[None], damp=0.0)
    np.testing.assert_array_equal(q, _rtn(w)[0])


def test_correlated_inputs_give_a_smaller_output_error_than_round_to_nearest():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 48)) @ rng.normal(size=(48, 48)) + rng.normal(size=48)
    w = rng.normal(size=(1, 16, 48))
    q, s = round_rows(w, (x.T @ x / len(x))[None])
    q0, s0 = _rtn(w)
    err = np.square((w[0] - q[0] * s[0][:, None]) @ x.T).mean()
    err0 = np.square((w[0] - q0[0] * s0[0][:, None]) @ x.T).mean()
    assert err < 0.7 * err0, (err, err0)


@pytest.mark.parametrize("group, stride, dilation, pads", [(1, 1, 1, [1, 1, 1, 1]), (2, 2, 2, [2, 1, 0, 2]),
                                                           (6, 1, 1, [1, 1, 1, 1])])
def test_patches_reproduce_the_convolution(group, stride, dilation, pads):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 6 // group, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group, strides=[stride] * 2,
                            dilations=[dilation] * 2, pads=pads)
    graph = helper.make_graph([conv], "g", [helper.make_tensor_value_info("x", 1, [2, 6, 9, 10])],
                              [helper.make_tensor_value_info("y", 1, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(2, 6, 9, 10)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    (layer,) = _layers(model)
    p = _patches(layer, x)                                  # [N*Ho*Wo, G, K]
    rows = w.reshape(group, 6 // group, -1)
    got = np.einsum("mgk,gok->mgo", p, rows).reshape(2, y.shape[2], y.shape[3], 6).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def se_fp32(export_cached, tmp_path_factory):
    from edge_se.quantize.stage import named_copy

    return named_copy(export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx"),
                      tmp_path_factory.mktemp("gptq") / "fp32.onnx")


def _dequantized_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """weight initializer name (or the DQ's int8 source) -> DQ(Q(w)) as the model computes it."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits and n.input[0] not in producer:
            continue
        src = n.input[0]
        q_node = producer.get(src)
        if q_node is not None and q_node.op_type == "QuantizeLinear" and q_node.input[0] in inits:
            w = inits[q_node.input[0]]
            name = q_node.input[0]
        elif src in inits and inits[src].dtype == np.int8:
            w, name = None, src
        else:
            continue
        scale = inits[n.input[1]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        shape = [1] * (w.ndim if w is not None else inits[src].ndim)
        if scale.ndim:
            shape[axis] = -1
        s = scale.reshape(shape)
        q = np.clip(np.rint(w / s), -127, 127) if w is not None else inits[src].astype(np.float64)
        out[name] = (q * s).astype(np.float32)
    return out


@pytest.mark.parametrize("flavour", flavours.FLAVOURS)
def test_int8_files_carry_exactly_the_gptq_weights_and_kept_layers_their_own(se_fp32, small_calib, tmp_path, flavour):
    weights = gptq_weights(se_fp32, small_calib.batches(16))
    model = onnx.load(str(se_fp32))
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert set(weights) == {n.input[1] for n in convs}
    original = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    changed = [k for k in weights if not np.allclose(weights[k], original[k], rtol=0, atol=1e-9)]
    assert changed, "GPTQ changed no weight"
    ranges = collect_statistics(se_fp32, small_calib.batches(16)).ranges("minmax")
    keep = [convs[3].name]
    out = tmp_path / "q.onnx"
    # 8-bit weights (on an x86 CPU without VNNI the stage's default is 7-bit, which re-rounds GPTQ's grid)
    flavours.builder(flavour, ranges, weights, reduce_range=False)(se_fp32, out, keep)
    q = onnx.load(str(out))
    deq = _dequantized_weights(q)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    kept_w = convs[3].input[1]
    assert kept_w not in deq and np.array_equal(inits[kept_w], original[kept_w])  # float layer: original weight
    compared = 0
    for name, w in weights.items():
        if name == kept_w:
            continue
        got = deq.get(name)
        if got is None:  # CPU flavour: the int8 initializer is named after the weight
            got = next((v for k, v in deq.items() if k.startswith(name)), None)
        assert got is not None, name
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)
        compared += 1
    assert compared == len(weights) - 1


def test_the_cpu_files_7_bit_weights_are_gptqs_own_on_that_grid(se_fp32, small_calib, tmp_path):
    """With reduce_range GPTQ rounds the CPU file's weights on ONNX Runtime's [-64, 64] grid, so the
    file carries exactly them (rounded once, not GPTQ's 8-bit values re-rounded to 7 bits), while the
    TensorRT file's weights stay on the 8-bit grid."""
    from edge_se.quantize.gptq import QMAX_REDUCED

    weights = flavours.rounded_weights("gptq", se_fp32, small_calib.batches(16), reduce_range=True)
    ranges = collect_statistics(se_fp32, small_calib.batches(16)).ranges("minmax")
    out = tmp_path / "cpu.onnx"
    info = flavours.builder("cpu", ranges, weights["cpu"], reduce_range=True)(se_fp32, out, [])
    assert info["reduce_range"] is True
    q = onnx.load(str(out))
    ints = [numpy_helper.to_array(i) for i in q.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert ints and max(int(np.abs(a).max()) for a in ints) == QMAX_REDUCED
    deq = _dequantized_weights(q)
    for name, w in weights["cpu"].items():
        got = next(v for k, v in deq.items() if k.startswith(name))
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)
    twice = 0  # the old way: GPTQ on the 8-bit grid, then ONNX Runtime's nearest 7-bit rounding
    for name, w8 in weights["trt"].items():
        s = np.abs(w8).reshape(len(w8), -1).max(axis=1).reshape(-1, *[1] * (w8.ndim - 1)) / QMAX_REDUCED
        twice += not np.allclose(np.clip(np.rint(w8 / s), -64, 64) * s, weights["cpu"][name], rtol=0, atol=1e-7)
    assert twice >= len(weights["trt"]) // 2


def test_rounding_on_the_reduced_grid_pins_each_row_maximum_at_64():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(1, 5, 30))
    x = rng.normal(size=(400, 30))
    q, scale = round_rows(w, (x.T @ x / len(x))[None], qmax=64)
    assert np.abs(q).max() <= 64 and (np.abs(q).max(axis=2) == 64).all()
    np.testing.assert_allclose(scale, np.abs(w).max(axis=2) / 64)
