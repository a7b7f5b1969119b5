"""Attention fidelity: gates exposed on a debug copy, compared with PyTorch, the lossy block named."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edge_se.quantize.patterns import find_attention_gates
from edge_se.report.tables import fidelity_table
from edge_se.validate.fidelity import GATE_PREFIX, attention_fidelity, make_debug_copy, run_debug_model


def _inject_gate_error(src, dst, block_index: int, factor: float = 3.0) -> str:
    """Copy of ``src`` whose ``block_index``-th gate sees its input scaled by ``factor``; returns the block name."""
    model = onnx.load(str(src))
    block = find_attention_gates(model)[block_index]
    for i, node in enumerate(model.graph.node):
        if node.name == block.gate_node:
            scaled = node.input[0] + "/injected"
            model.graph.initializer.append(numpy_helper.from_array(np.array(factor, np.float32), "injected_factor"))
            model.graph.node.insert(i, helper.make_node("Mul", [node.input[0], "injected_factor"], [scaled], name="injected"))
            node.input[0] = scaled
            break
    onnx.save(model, str(dst))
    return block.name


@pytest.mark.parametrize("name,index", [("cbam_digits", 2), ("se_digits", 1), ("sk_digits", 0), ("simam_digits", 1)])
def test_injected_gate_error_is_named_the_worst_block(zoo_model_onnx, digit_inputs, tmp_path, name, index):
    module, fp32 = zoo_model_onnx(name)
    broken = tmp_path / "broken.onnx"
    target = _inject_gate_error(fp32, broken, index)
    result = attention_fidelity(broken, digit_inputs, tmp_path / "work", module=module, reference_onnx=fp32)
    assert result["worst"] == target
    _, table = fidelity_table({"fidelity": result})
    assert [r[0] for r in table if "worst" in r[0]] == [f"{target} ◀ worst"]
    by_block = {r["block"]: r for r in result["blocks"]}
    assert by_block[target]["local_mean_abs"] > 10 * max(
        r["local_mean_abs"] for b, r in by_block.items() if b != target
    )


def test_fp32_gates_match_pytorch(zoo_model_onnx, digit_inputs, tmp_path):
    module, fp32 = zoo_model_onnx("cbam_digits")
    result = attention_fidelity(fp32, digit_inputs, tmp_path, module=module, reference_onnx=fp32)
    assert len(result["blocks"]) == 6
    for row in result["blocks"]:
        assert row["cosine_min"] > 0.99999 and row["max_abs"] < 1e-4, row


def test_debug_copy_leaves_the_deployed_model_untouched(zoo_model_onnx, digit_inputs, tmp_path):
    import onnxruntime as ort

    _, fp32 = zoo_model_onnx("eca_digits")
    before = hashlib.sha256(fp32.read_bytes()).hexdigest()
    dbg = make_debug_copy(fp32, tmp_path / "debug.onnx")
    assert hashlib.sha256(fp32.read_bytes()).hexdigest() == before
    assert [o.name for o in onnx.load(str(fp32)).graph.output] == dbg.model_outputs
    outs = run_debug_model(dbg, digit_inputs[:4])
    plain = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": digit_inputs[:4]})[0]
    np.testing.assert_allclose(outs[dbg.model_outputs[0]], plain, rtol=1e-5, atol=1e-6)
    assert sorted(dbg.gate_outputs.values()) == sorted(k for k in outs if k.startswith(GATE_PREFIX))


def test_sk_blocks_report_branch_argmax_agreement(zoo_model_onnx, digit_inputs, tmp_path):
    module, fp32 = zoo_model_onnx("sk_digits")
    result = attention_fidelity(fp32, digit_inputs, tmp_path, module=module, reference_onnx=fp32)
    assert [r["sk_argmax_agreement"] for r in result["blocks"]] == [1.0, 1.0]


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_int8_gates_are_measured_on_both_quantized_formats(zoo_model_onnx, digit_inputs, tmp_path, fmt):
    import onnxslim
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    module, fp32 = zoo_model_onnx("bam_digits")
    slim = tmp_path / "slim.onnx"
    onnx.save(onnxslim.slim(onnx.load(str(fp32))), str(slim))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": digit_inputs[i : i + 8]} for i in range(0, 32, 8)])

        def get_next(self):
            return next(self.items, None)

    int8 = tmp_path / "int8.onnx"
    quantize_static(str(slim), str(int8), Reader(), quant_format=getattr(QuantFormat, fmt))
    result = attention_fidelity(int8, digit_inputs, tmp_path / "work", module=module, reference_onnx=slim)
    assert len(result["blocks"]) == 3 and not result["notes"]
    for row in result["blocks"]:
        assert 0.9 < row["cosine_min"] < 1.0 and 0 < row["local_max_abs"] < 0.1, row


def test_a_dead_gate_is_not_reported_as_perfect():
    """An INT8 gate that outputs all zeros where FP32 does not has cosine 0 (it read 1.0 before)."""
    from edge_se.validate.fidelity import gate_metrics
    from edge_se.reference.numerics import compare_outputs

    ref = np.random.default_rng(0).uniform(0.1, 0.9, (4, 8, 1, 1)).astype(np.float32)
    dead = np.zeros_like(ref)
    assert gate_metrics(ref, dead, "se")["cosine_min"] == 0.0
    assert gate_metrics(dead, dead, "se")["cosine_min"] == 1.0
    # the numerics check and the fidelity report agree on it
    assert compare_outputs([ref], [dead], "fp32", names=["gate"])["outputs"][0]["cosine_min"] == 0.0
