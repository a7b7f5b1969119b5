"""Precision policies: all, keep-gates (found by pattern, on any model) and auto (sensitivity + budget)."""

from __future__ import annotations

import onnx
import pytest

from edge_se.errors import InputError
from edge_se.quantize.cpu_int8 import quantize_cpu
from edge_se.quantize.policies import candidate_blocks, decide
from edge_se.quantize.ranges import collect_statistics


def _quantized_outputs(model: onnx.ModelProto) -> set[str]:
    return {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def _build(fp32, out, calib, keep):
    ranges = collect_statistics(fp32, calib.batches(16)).ranges("minmax")
    quantize_cpu(fp32, out, ranges, keep)
    return onnx.load(str(out))


def test_keep_gates_keeps_every_gate_node_in_float(export_cached, small_calib, tmp_path):
    fp32 = export_cached("cbam_digits", (1, 1, 32, 32)).verify("model.onnx")
    d = decide("keep-gates", fp32)
    assert d.gates_found == 6 and len(d.kept_blocks) == 6  # channel + spatial gate per stage
    model = _build(fp32, tmp_path / "q.onnx", small_calib, d.kept_nodes)
    kept = set(d.kept_nodes)
    quantized = _quantized_outputs(model)
    for n in model.graph.node:
        if n.name in kept:
            assert n.op_type not in ("QLinearConv", "QLinearMul", "QLinearSigmoid")
            assert not set(n.output) & quantized, f"{n.name} output is quantized"


def test_policy_all_quantizes_gate_nodes(export_cached, small_calib, tmp_path):
    fp32 = export_cached("cbam_digits", (1, 1, 32, 32)).verify("model.onnx")
    gates = decide("keep-gates", fp32).kept_nodes
    assert decide("all", fp32).kept_nodes == []
    model = _build(fp32, tmp_path / "q.onnx", small_calib, [])
    produced = {o: n.name for n in model.graph.node for o in n.output}
    assert {produced[t] for t in _quantized_outputs(model) if t in produced} & set(gates)


def test_keep_gates_finds_the_gates_of_a_torchvision_model(export_cached):
    bundle = export_cached("torchvision:mobilenet_v3_small", (1, 3, 64, 64))
    d = decide("keep-gates", bundle.verify("model.onnx"))
    assert len(d.kept_blocks) == 9  # mobilenet_v3_small has 9 SqueezeExcitation blocks
    assert all(b.kind == "se" for b in d.kept_blocks)


def _shrunk_ranges(fp32, calib, factor):
    """Real ranges of ``fp32`` shrunk by ``factor``: heavy clipping, so INT8 visibly misses any budget."""
    from edge_se.quantize.ranges import TensorRanges

    r = collect_statistics(fp32, calib.batches(16)).ranges("minmax")
    return TensorRanges(r.method, {k: (lo * factor, hi * factor) for k, (lo, hi) in r.ranges.items()}, samples=r.samples)


def test_auto_keeps_everything_int8_when_the_budget_is_met(export_cached, small_calib):
    from edge_se.quantize.policies import Budget

    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    ranges = collect_statistics(fp32, small_calib.batches(16)).ranges("minmax")
    d = decide("auto", fp32, builder=lambda s, o, k: quantize_cpu(s, o, ranges, k), x=small_calib.array(),
               budget=Budget(min_agreement=0.0))
    assert d.kept_blocks == [] and d.details["budget_met"] and d.int8_mac_share == 1.0
    assert len(d.details["steps"]) == 1 and d.details["sensitivity"] == []  # no probe when nothing is needed


@pytest.mark.parametrize("min_int8", [0.95, 1.0])
def test_auto_repairs_a_missed_budget_only_inside_the_int8_floor(export_cached, small_calib, min_int8):
    from edge_se.quantize.policies import PROBE_ROUND, Budget, _rank_gain, weighted_macs

    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    ranges = _shrunk_ranges(fp32, small_calib, 0.05)
    model = onnx.load(str(fp32))
    macs = weighted_macs(model)
    blocks = {b.name: b for b in candidate_blocks(model)}
    total = sum(macs.values())
    cost = {name: sum(macs.get(n, 0) for n in b.nodes) for name, b in blocks.items()}
    d = decide("auto", fp32, builder=lambda s, o, k: quantize_cpu(s, o, ranges, k), x=small_calib.array(),
               budget=Budget(min_agreement=99.0, min_int8=min_int8))
    steps = d.details["steps"]
    assert steps[0]["kept_count"] == 0 and not steps[0]["met"]  # clipped INT8 misses the budget
    probed = [s["block"] for s in d.details["sensitivity"]]
    allowance = (1 - min_int8) * total
    eligible = [b for b in blocks if cost[b] <= allowance]  # candidate order: gates first
    assert probed == eligible[: len(probed)]  # nothing over the allowance probed, in rounds from the start
    probes = d.details["probes"]
    assert probes == {"eligible": len(eligible), "probed": len(probed), "early_exit": len(probed) < len(eligible)}
    if probes["early_exit"]:  # probing stops only at a configuration that meets the budget
        assert d.details["budget_met"] and len(probed) % PROBE_ROUND == 0
    assert d.int8_mac_share >= min_int8
    if min_int8 == 1.0:
        assert all(cost[b.name] == 0 for b in d.kept_blocks)
    else:  # kept: a prefix of the gain-per-MAC ranking, cut to the allowance
        assert probed
        ranked = [probed[i] for i in _rank_gain(d.details["sensitivity"], list(range(len(probed))), total)]
        fits, used = [], 0
        for b in ranked:
            if used + cost[b] <= allowance:
                fits.append(b)
                used += cost[b]
        kept = [b.name for b in d.kept_blocks]
        assert kept == fits[: len(kept)]
        assert d.details["budget_met"] == next(s["met"] for s in reversed(steps) if s["kept"] == kept)
    if not d.details["budget_met"]:
        assert d.details["budget_misses"] and "agreement" in d.details["budget_misses"][0]


def test_a_budget_miss_counts_only_when_it_is_significant():
    import numpy as np

    from edge_se.quantize.policies import Budget, judge

    def logits(n, flips):
        ref = np.tile(np.array([[2.0, 1.0, 0.0]], dtype=np.float32), (n, 1))
        got = ref.copy()
        got[:flips] = [[1.0, 2.0, 0.0]]
        return ref, got

    b = Budget(min_agreement=99.5)
    assert judge(*logits(64, 1), None, b)["met"]  # 98.4 % on 64 samples: no evidence of < 99.5 %
    assert not judge(*logits(9000, 90), None, b)["met"]  # 99.0 % on 9,000: significant
    assert not judge(*logits(9000, 50), None, b)["met"]  # 99.44 %: 9,000 samples resolve 99.5 %: held to it
    assert judge(*logits(400, 3), None, b)["met"]  # 99.25 % on 400 (< 599 needed): not significant
    ref, got = logits(9000, 0)
    labels = np.zeros(9000, dtype=np.int64)
    got[:40] = [[1.0, 2.0, 0.0]]  # 40 correct -> wrong: drop 0.44 points, significantly > 0.1
    m = judge(ref, got, labels, Budget(min_agreement=0.0, max_drop=0.1))
    assert not m["met"] and m["accuracy_drop_lower"] > 0.1 and "accuracy drop" in m["misses"][0]
    assert Budget().samples_to_resolve(False) == 999 and Budget().samples_to_resolve(True) == 2996


def test_gain_ranking_puts_repairs_per_mac_first():
    from edge_se.quantize.policies import _rank_gain

    sens = [{"loss_removed": 0.2, "macs": 1000, "sqnr_db": 30}, {"loss_removed": 0.1, "macs": 10, "sqnr_db": 30},
            {"loss_removed": 0.0, "macs": 1, "sqnr_db": 30}, {"loss_removed": -0.1, "macs": 1, "sqnr_db": 30},
            {"loss_removed": 0.3, "macs": 1000, "sqnr_db": 31}]
    # per MAC: block 1 (0.01), then 4 (3e-4) before 0 (2e-4); blocks removing nothing are dropped
    assert _rank_gain(sens, [0, 1, 2, 3, 4], total=10_000) == [1, 4, 0]


def test_unknown_policy_is_refused(export_cached):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    with pytest.raises(InputError, match="all, keep-gates, auto"):
        decide("gates-only", fp32)


def test_int8_mac_share_counts_the_weighted_layers_left_in_int8(export_cached):
    from edge_se.quantize.policies import weighted_macs

    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    model = onnx.load(str(fp32))
    named = {n.name: n for n in model.graph.node}
    macs = weighted_macs(model)
    stem = next(k for k in macs if "stem" in k)
    assert macs[stem] == 16 * 32 * 32 * (1 * 3 * 3)          # C_out * H * W * (C_in/g * kh * kw)
    fc = next(k for k, n in named.items() if n.op_type == "Gemm")
    assert macs[fc] == 10 * 128
    dw = next(k for k in macs if "blocks.0/dw" in k)
    assert macs[dw] == 64 * 16 * 16 * 9                      # depthwise: one input channel per output
    assert decide("all", fp32).int8_mac_share == 1.0
    gates = decide("keep-gates", fp32)
    gate_macs = sum(v for k, v in macs.items() if k in set(gates.kept_nodes))
    assert gate_macs > 0
    assert gates.int8_mac_share == round(1 - gate_macs / sum(macs.values()), 4)
    assert gates.to_dict()["int8_mac_share"] == gates.int8_mac_share


def test_auto_stops_probing_once_the_probed_blocks_repair_the_file(export_cached, small_calib):
    """A file only the first gate breaks (kept float, the builder writes the FP32 model; otherwise
    the clipped INT8 file): the first round of probes finds it, the ranked configuration meets the
    budget, and the remaining eligible blocks are never probed."""
    import shutil

    from edge_se.quantize.policies import PROBE_ROUND, Budget

    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    ranges = _shrunk_ranges(fp32, small_calib, 0.05)
    first = candidate_blocks(onnx.load(str(fp32)))[0]

    def builder(src, out, keep):
        if set(first.nodes) <= set(keep):
            shutil.copyfile(src, out)
        else:
            quantize_cpu(src, out, ranges, keep)

    d = decide("auto", fp32, builder=builder, x=small_calib.array(), budget=Budget(min_agreement=99.0, min_int8=0.5))
    probes = d.details["probes"]
    assert probes["eligible"] > PROBE_ROUND
    assert probes == {"eligible": probes["eligible"], "probed": PROBE_ROUND, "early_exit": True}
    assert d.details["budget_met"] and [b.name for b in d.kept_blocks] == [first.name]
