"""One calibration run -> per-tensor ranges by min-max, percentile, entropy and MSE."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_se.errors import InputError
from edge_se.quantize.ranges import METHODS, collect_statistics


@pytest.fixture
def relu_model(tmp_path):
    """input -> Relu -> Neg -> output: three tensors with known values."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["output"], name="neg")],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1000])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _batches(seed: int = 0, outlier: float | None = None):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4):
        b = rng.standard_normal((8, 1000)).astype(np.float32) * (i + 1)  # growing range: forces re-binning
        out.append(b)
    if outlier is not None:
        out[0][0, 0] = outlier
    return out


def test_every_activation_tensor_is_calibrated(relu_model):
    stats = collect_statistics(relu_model, _batches())
    assert set(stats.hists) == {"input", "r", "output"}
    assert stats.samples == 32


def test_minmax_ranges_are_the_observed_extremes(relu_model):
    batches = _batches()
    r = collect_statistics(relu_model, batches).ranges("minmax")
    allx = np.concatenate(batches)
    assert r.ranges["input"] == pytest.approx((allx.min(), allx.max()))
    assert r.ranges["r"] == pytest.approx((0.0, allx.max()))
    assert r.ranges["output"] == pytest.approx((-allx.max(), 0.0))


def test_histogram_keeps_every_value_when_the_range_grows(relu_model):
    stats = collect_statistics(relu_model, _batches())
    assert stats.hists["input"].counts.sum() == 32 * 1000


def test_percentile_clips_a_single_outlier(relu_model):
    stats = collect_statistics(relu_model, _batches(outlier=1000.0))
    lo, hi = stats.ranges("percentile", percentile=99.99).ranges["input"]
    assert stats.ranges("minmax").ranges["input"][1] == pytest.approx(1000.0)
    assert hi < 30.0 and lo > -30.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_ranges_inside_the_observed_ones(relu_model, method):
    stats = collect_statistics(relu_model, _batches(outlier=200.0))
    mm = stats.ranges("minmax").ranges
    for name, (lo, hi) in stats.ranges(method).ranges.items():
        assert mm[name][0] <= lo <= 0.0 <= hi <= mm[name][1]
        assert hi - lo > 0


def test_entropy_clips_a_heavy_outlier_that_minmax_keeps(relu_model):
    stats = collect_statistics(relu_model, _batches(outlier=500.0))
    assert stats.ranges("entropy").ranges["input"][1] < 100.0


def test_mse_clips_gaussian_tails_where_rounding_error_dominates(relu_model):
    rng = np.random.default_rng(0)
    gaussian = [rng.standard_normal((8, 1000)).astype(np.float32) for _ in range(25)]  # 200k samples
    stats = collect_statistics(relu_model, gaussian)
    assert stats.ranges("mse").ranges["input"][1] < 0.9 * stats.ranges("minmax").ranges["input"][1]


def test_unknown_method_is_refused(relu_model):
    stats = collect_statistics(relu_model, _batches())
    with pytest.raises(InputError, match="minmax, percentile, entropy, mse"):
        stats.ranges("kl")


def test_ranges_round_trip_through_json(relu_model, tmp_path):
    from edge_se.quantize.ranges import load_ranges, save_ranges

    r = collect_statistics(relu_model, _batches()).ranges("percentile", 99.9)
    save_ranges(r, tmp_path / "r.json")
    back = load_ranges(tmp_path / "r.json")
    assert back.method == "percentile" and back.params == {"percentile": 99.9}
    assert set(back.ranges) == set(r.ranges)
    for name, (lo, hi) in r.ranges.items():
        assert back.ranges[name] == pytest.approx((lo, hi))
