"""Calibration in bounded memory: statistics independent of batching, batch sizes from a limit,
and a limit too small for one sample refused in one line before anything runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_se.bundle import Bundle
from edge_se.cli import main
from edge_se.errors import InputError
from edge_se.quantize import memory
from edge_se.quantize.ranges import METHODS, _Histogram, collect_statistics
from edge_se.quantize.trt_cache import CalibrationCache

CACHE = "model.int8.calib.cache"
RANGES = "model.int8.ranges.json"


def test_histogram_counts_do_not_depend_on_how_values_are_split_or_ordered():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(5000) * s for s in (0.01, 1.0, 30.0, 0.5)]).astype(np.float32)
    values[17] = 1000.0  # one outlier: the range grows by many powers of two
    whole = _Histogram()
    whole.add(values)
    for parts in (1, 7, 64, 997):
        for order in (values, values[::-1]):
            h = _Histogram()
            for chunk in np.array_split(order, parts):
                h.add(chunk)
            assert (h.lo, h.hi, h.amax, h.top) == (whole.lo, whole.hi, whole.amax, whole.top)
            assert np.array_equal(h.counts, whole.counts)
    assert whole.counts.sum() == values.size
    assert whole.top == 1024.0  # the smallest power of two above max |x|


def test_histogram_of_zeros_then_values_keeps_the_zeros_in_the_first_bin():
    h = _Histogram()
    h.add(np.zeros(10, np.float32))
    h.add(np.array([3.0, -5.0], np.float32))
    assert h.counts.sum() == 12 and h.counts[0] == 10 and h.top == 8.0


def test_ranges_and_cache_are_the_same_for_calibration_batches_of_1_7_and_64(export_cached, digits_calib):
    """The real digits set through the real exported se_digits model, batched three ways."""
    bundle = export_cached("se_digits", (1, 1, 32, 32))
    fp32 = bundle.path("model.onnx")
    stats = {b: collect_statistics(fp32, digits_calib.batches(b)) for b in (1, 7, 64)}
    assert {s.samples for s in stats.values()} == {digits_calib.count}
    for method in METHODS:
        r = {b: s.ranges(method) for b, s in stats.items()}
        for b in (7, 64):
            assert r[b].ranges.keys() == r[1].ranges.keys()
            for name, (lo, hi) in r[1].ranges.items():
                # ONNX Runtime's kernels may round differently for another batch size: 1 float32 ulp
                assert r[b].ranges[name] == pytest.approx((lo, hi), rel=2e-7, abs=1e-30), (method, name)
        caches = {b: CalibrationCache.from_ranges(r[b], version="8601").scales for b in r}
        assert caches[7].keys() == caches[1].keys()
        for name, scale in caches[1].items():
            assert caches[7][name] == pytest.approx(scale, rel=2e-7) and caches[64][name] == pytest.approx(scale, rel=2e-7)


@pytest.fixture
def steady_rss(monkeypatch):
    """This process's RSS fixed at 300 MB while planning: the test's own allocations between two
    plans would otherwise move the limits it computes (the estimate itself is unchanged)."""
    monkeypatch.setattr(memory, "process_rss", lambda: 300 << 20)


def test_plan_picks_the_largest_batches_that_fit_and_refuses_a_limit_below_one_sample(export_cached, steady_rss):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).path("model.onnx")
    roomy = memory.plan(fp32, eval_samples=100, limit=8 << 30)
    assert roomy.calib_batch == memory.MAX_CALIB_BATCH and roomy.gptq_chunk == memory.MAX_GPTQ_CHUNK
    tight_limit = roomy.resident + int(2.5 * roomy.calib_per_sample)
    tight = memory.plan(fp32, eval_samples=100, limit=tight_limit)
    assert tight.calib_batch == 2
    assert tight.resident + tight.calib_batch * tight.calib_per_sample <= tight_limit
    assert tight.resident + tight.gptq_chunk * tight.gptq_per_sample <= tight_limit
    with pytest.raises(memory.MemoryLimitError, match=r"needs about .* pass --max-memory \d+\.\dG or more"):
        memory.plan(fp32, eval_samples=100, limit=roomy.resident + roomy.calib_per_sample // 2)


def test_a_selection_set_larger_than_the_limit_allows_is_refused_naming_it(export_cached, steady_rss):
    fp32 = export_cached("se_digits", (1, 1, 32, 32)).path("model.onnx")
    small = memory.plan(fp32, eval_samples=100, limit=8 << 30)
    # 2 million 32x32 digits (8 GB of float32) held for evaluation cannot fit in 2 GB
    with pytest.raises(memory.MemoryLimitError, match="2000000 selection samples.*use a smaller --eval set"):
        memory.plan(fp32, eval_samples=2_000_000, limit=2 << 30)
    assert small.resident < 2 << 30


@pytest.mark.parametrize("text, expected", [("4G", 4 << 30), ("1.5GiB", 3 << 29), ("800M", 800 << 20),
                                            ("800MB", 800 << 20), ("123456", 123456), ("64k", 64 << 10)])
def test_sizes_parse_in_binary_units(text, expected):
    assert memory.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "4X", "1e9"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(InputError, match="is not a size"):
        memory.parse_size(text)


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_cli_refuses_a_limit_too_small_for_one_sample_in_one_line_and_writes_nothing(
        export_cached, copy_bundle, small_calib, capsys):
    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    before = _files(bundle.root)
    code = main(["quantize", str(bundle.root), "--precision", "int8", "--calib", str(small_calib.root),
                 "--max-memory", "1M"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "limit is 1.0 MB (--max-memory)" in err and "pass --max-memory" in err
    assert _files(bundle.root) == before


def test_a_tight_limit_calibrates_one_sample_at_a_time_and_publishes_the_same_ranges(
        export_cached, small_calib, tmp_path, steady_rss):
    """Two real quantize runs of one bundle, batch 32 and batch 1: the same cache and ranges."""
    import shutil

    src = export_cached("se_digits", (1, 1, 32, 32))
    p = memory.plan(src.path("model.onnx"), eval_samples=small_calib.count, limit=8 << 30)
    tight = p.resident + int(1.5 * p.calib_per_sample)
    results = {}
    for label, limit in (("roomy", "8G"), ("tight", str(tight))):
        root = tmp_path / label
        shutil.copytree(src.root, root)
        assert main(["-q", "quantize", str(root), "--precision", "int8", "--calib", str(small_calib.root),
                     "--policy", "all", "--max-memory", limit]) == 0
        b = Bundle.open(root)
        rec = b.artifact(CACHE)["calibration"]["memory"]
        results[label] = (rec["batch"], b.path(CACHE).read_text(), json.loads((root / RANGES).read_text()))
    assert results["roomy"][0]["calibrate"] == memory.MAX_CALIB_BATCH and results["tight"][0]["calibrate"] == 1
    ranges = {k: v[2]["ranges"] for k, v in results.items()}
    assert ranges["roomy"].keys() == ranges["tight"].keys()
    for name, (lo, hi) in ranges["roomy"].items():
        assert ranges["tight"][name] == pytest.approx([lo, hi], rel=2e-7, abs=1e-30)
    roomy_cache, tight_cache = (v[1].splitlines() for v in results.values())
    assert roomy_cache[0] == tight_cache[0] and len(roomy_cache) == len(tight_cache) == len(ranges["roomy"]) + 1
