"""Weight scales learned once and handed to ONNX Runtime: the same files, byte for byte."""

from __future__ import annotations

import onnx
import pytest

from edge_se.quantize import flavours
from edge_se.quantize.policies import candidate_blocks
from edge_se.quantize.ranges import collect_statistics
from edge_se.quantize.weight_params import WeightParams


def _bytes(path) -> bytes:
    return onnx.load(str(path)).SerializeToString()


@pytest.mark.parametrize("flavour,reduce_range", [("cpu", True), ("cpu", False), ("trt", None)])
def test_learned_weight_scales_build_the_same_files(export_cached, small_calib, tmp_path, flavour, reduce_range):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx")
    ranges = collect_statistics(fp32, small_calib.batches(16)).ranges("minmax")
    weights = flavours.rounded_weights("gptq", fp32, small_calib.batches(16),
                                       reduce_range=bool(reduce_range))[flavour]
    blocks = candidate_blocks(onnx.load(str(fp32)))
    conv_block = next(b for b in blocks if b.kind != "se")  # a block with weights of its own
    keeps = [[], blocks[0].nodes, conv_block.nodes, []]
    params = WeightParams()
    shared = flavours.builder(flavour, ranges, weights, reduce_range=reduce_range, params=params)
    plain = flavours.builder(flavour, ranges, weights, reduce_range=reduce_range)
    for i, keep in enumerate(keeps):
        shared(fp32, tmp_path / f"shared{i}.onnx", keep)
        assert params.learned
        plain(fp32, tmp_path / f"plain{i}.onnx", keep)
        assert _bytes(tmp_path / f"shared{i}.onnx") == _bytes(tmp_path / f"plain{i}.onnx"), f"keep {keep}"
    # what the later builds were handed: the first build's int8 weights (symmetric), none of a kept node's
    rr = bool(reduce_range)  # the TensorRT file's quantizer runs with reduce_range False
    learned = params.overrides([], rr)
    assert learned and all(s["zero_point"] == 0 for p in learned.values() for s in p)
    assert not set(params.overrides(conv_block.nodes, rr)) \
        & {t for n in onnx.load(str(fp32)).graph.node if n.name in conv_block.nodes for t in n.input}
