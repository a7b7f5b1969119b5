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


def test_auto_ranks_every_candidate_and_keeps_the_most_sensitive_until_the_budget(export_cached, small_calib):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    x = small_calib.array()
    ranges = collect_statistics(fp32, small_calib.batches(16)).ranges("minmax")

    def builder(src, out, keep):
        quantize_cpu(src, out, ranges, keep)

    d = decide("auto", fp32, builder=builder, x=x, labels=None, max_drop=0.0, rank="sqnr")
    names = [s["block"] for s in d.details["sensitivity"]]
    assert names == [b.name for b in candidate_blocks(onnx.load(str(fp32)))]
    ranked = [s["block"] for s in sorted(d.details["sensitivity"], key=lambda s: s["sqnr_db"])]
    kept = [b.name for b in d.kept_blocks]
    assert kept == ranked[: len(kept)]
    steps = {s["kept_count"]: s for s in d.details["steps"]}
    assert steps[len(kept)]["kept"] == kept
    assert d.details["budget_met"] == (steps[len(kept)]["drop"] <= 0.0)
    if d.details["budget_met"] and kept:  # bisection: one block fewer was measured and missed it
        assert steps[len(kept) - 1]["drop"] > 0.0
    assert len(steps) <= 2 + len(ranked).bit_length()


def test_per_mac_ranking_puts_cheap_noisy_blocks_before_the_convolutions(export_cached, small_calib):
    from edge_se.quantize.policies import _rank, weighted_macs

    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    model = onnx.load(str(fp32))
    blocks = candidate_blocks(model)
    macs = weighted_macs(model)
    cost = [sum(macs.get(n, 0) for n in b.nodes) for b in blocks]
    # equal noise everywhere: the cheapest block goes float first, the most expensive last
    flat = [{"sqnr_db": 30.0} for _ in blocks]
    order = _rank(blocks, flat, macs, "per-mac")
    assert [cost[i] for i in order] == sorted(cost)
    # the most expensive block made 20 dB (100x) noisier goes ahead of every block costing more
    # than 1/100 of its MACs, and behind the cheaper ones; ranked by SQNR alone it goes first
    loud = cost.index(max(cost))
    flat[loud] = {"sqnr_db": 10.0}
    order = _rank(blocks, flat, macs, "per-mac")
    pos = order.index(loud)
    assert all(cost[i] <= cost[loud] / 100 for i in order[:pos])
    assert all(cost[i] > cost[loud] / 100 for i in order[pos + 1:])
    assert _rank(blocks, flat, macs, "sqnr")[0] == loud


def test_auto_with_a_loose_budget_keeps_nothing(export_cached, small_calib):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    ranges = collect_statistics(fp32, small_calib.batches(16)).ranges("minmax")
    d = decide("auto", fp32, builder=lambda s, o, k: quantize_cpu(s, o, ranges, k), x=small_calib.array(),
               max_drop=100.0)
    assert d.kept_blocks == [] and d.details["budget_met"]


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
