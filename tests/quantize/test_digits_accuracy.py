"""The INT8 accuracy bound on trained digits nets (slow: trains/loads checkpoints, runs digits-hard).

Done-when bound: with the default policy and method, INT8 (the CPU flavour) agrees with FP32 on
>= 99.9 % of digits-hard and loses <= 0.1 accuracy points. ``auto`` selects on a different
augmentation draw of digits-hard (seed 1) than the one it is judged on (seed 0).
"""

from __future__ import annotations

import pytest

from edge_se.quantize import policies
from edge_se.quantize.cpu_int8 import quantize_cpu
from edge_se.quantize.metrics import logit_metrics, run_onnx
from edge_se.quantize.qdq_trt import quantize_trt
from edge_se.quantize.ranges import collect_statistics
from edge_se.quantize.stage import DEFAULT_METHOD, DEFAULT_POLICY, named_copy

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("attn", ["se", "cbam"])
def test_default_policy_meets_the_int8_bound_on_digits_hard(attn, trained_bundle, digits_calib, tmp_path):
    from edge_se.data.digits import digits_hard

    fp32 = named_copy(trained_bundle(attn).verify("model.onnx"), tmp_path / "fp32.onnx")
    ranges = collect_statistics(fp32, digits_calib.batches(32)).ranges(DEFAULT_METHOD)
    xs, ys = digits_hard(seed=1)
    d = policies.decide(DEFAULT_POLICY, fp32, builder=lambda s, o, k: quantize_cpu(s, o, ranges, k),
                        x=xs, labels=ys, max_drop=policies.DEFAULT_MAX_DROP)
    x, y = digits_hard(seed=0)
    ref = run_onnx(fp32, x)
    quantize_cpu(fp32, tmp_path / "cpu.onnx", ranges, d.kept_nodes)
    m = logit_metrics(ref, run_onnx(tmp_path / "cpu.onnx", x), y)
    kept = f"kept {len(d.kept_blocks)} blocks in float: {[b.name for b in d.kept_blocks]}"
    assert m["agreement"] >= 99.9, kept
    assert m["accuracy_drop"] <= 0.1, kept


@pytest.mark.parametrize("attn", ["se", "cbam"])
def test_keep_gates_is_no_worse_than_all_on_digits_hard(attn, trained_bundle, digits_calib, tmp_path):
    """The gates are the INT8-sensitive part: keeping them float never costs SQNR (TRT flavour)."""
    from edge_se.data.digits import digits_hard

    fp32 = named_copy(trained_bundle(attn).verify("model.onnx"), tmp_path / "fp32.onnx")
    ranges = collect_statistics(fp32, digits_calib.batches(32)).ranges(DEFAULT_METHOD)
    x, y = digits_hard(seed=0)
    x, y = x[::3], y[::3]
    ref = run_onnx(fp32, x)
    sqnr = {}
    for policy in ("all", "keep-gates"):
        quantize_trt(fp32, tmp_path / f"{policy}.onnx", ranges, policies.decide(policy, fp32).kept_nodes)
        sqnr[policy] = logit_metrics(ref, run_onnx(tmp_path / f"{policy}.onnx", x), y)["sqnr_db"]
    assert sqnr["keep-gates"] >= sqnr["all"] - 0.5, sqnr
