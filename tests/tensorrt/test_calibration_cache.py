"""Calibration caches for the calibrator path: the header decides whether TensorRT will use one."""

from __future__ import annotations

import pytest

from edge_se.errors import CalibrationError
from edge_se.tensorrt.calibrator import cache_header, check_cache

CACHE = b"TRT-8601-MinMaxCalibration\ninput: 3c010204\n/conv/Conv_output_0: 3d1c2b1a\n"


def test_header_gives_version_number_and_algorithm():
    assert cache_header(CACHE) == ("8601", "MinMaxCalibration")


def test_cache_of_the_recipe_algorithm_is_accepted():
    check_cache(CACHE, "minmax", "c.cache")


def test_cache_of_another_algorithm_is_refused_because_tensorrt_would_ignore_it():
    with pytest.raises(CalibrationError, match="written by MinMaxCalibration but the recipe's calibrator is entropy2"):
        check_cache(CACHE, "entropy2", "c.cache")


def test_file_without_a_header_is_refused():
    with pytest.raises(CalibrationError, match="not a TensorRT calibration cache"):
        check_cache(b"input: 3c010204\n", "entropy2", "c.cache")


def test_cache_written_by_the_quantize_stage_is_readable():
    trt_cache = pytest.importorskip("edge_se.quantize.trt_cache", reason="quantize stage not present")
    from edge_se.quantize.ranges import TensorRanges  # noqa: F401 - its dependency

    text = trt_cache.CalibrationCache.parse(CACHE.decode(), "c").to_text()
    assert cache_header(text.encode()) == ("8601", "MinMaxCalibration")


def test_cache_for_another_tensorrt_version_is_refused_naming_the_fix():
    """TensorRT ignores a cache whose header names another version (then calibrates on whatever it has)."""
    check_cache(CACHE, "minmax", "c.cache", version="8.6.1.6")  # 8.6.1 reads TRT-8601
    with pytest.raises(CalibrationError, match=r"written for TensorRT 8601 .* this is TensorRT 10\.3\.0\.26 "
                                               r"\(header 100300\).*--trt-cache-version 10\.3\.0"):
        check_cache(CACHE, "minmax", "c.cache", version="10.3.0.26")
