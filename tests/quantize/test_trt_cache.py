"""The TensorRT calibration cache: text format, round trip, and agreement with the QDQ scales."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge_se.errors import CalibrationError
from edge_se.quantize.ranges import TensorRanges
from edge_se.quantize.trt_cache import CalibrationCache, hex_to_scale, read_cache, scale_to_hex, write_cache


def _ranges() -> TensorRanges:
    return TensorRanges(
        method="minmax",
        ranges={"input": (-1.0, 1.0), "/stem/Conv_output_0": (-3.25, 7.5), "relu:0": (0.0, 0.001), "zero": (0.0, 0.0)},
    )


def test_scale_is_written_as_big_endian_ieee_bits():
    assert scale_to_hex(1.0) == "3f800000"
    assert scale_to_hex(-2.0) == "c0000000"
    assert hex_to_scale("3c010204") == np.float32(np.frombuffer(bytes.fromhex("3c010204")[::-1], np.float32)[0])


def test_cache_text_starts_with_the_tensorrt_header_then_one_line_per_tensor():
    text = CalibrationCache.from_ranges(_ranges()).to_text()
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert len(lines) == 1 + 4
    assert lines[1] == f"input: {scale_to_hex(np.float32(2.0) / np.float32(254))}"


def test_cache_round_trips_through_a_file_bit_for_bit(tmp_path):
    cache = CalibrationCache.from_ranges(_ranges(), version="8502", algorithm="MinMaxCalibration")
    write_cache(tmp_path / "c.cache", cache)
    back = read_cache(tmp_path / "c.cache")
    assert back.header == "TRT-8502-MinMaxCalibration"
    assert list(back.scales) == list(cache.scales)
    for name, scale in cache.scales.items():
        assert back.scales[name].tobytes() == np.float32(scale).tobytes()


def test_scale_is_the_symmetric_range_over_127():
    cache = CalibrationCache.from_ranges(_ranges())
    assert cache.scales["/stem/Conv_output_0"] == pytest.approx(7.5 / 127, rel=1e-7)
    assert cache.scales["zero"] == np.float32(1.0)  # empty range: ORT's convention


def test_tensor_names_containing_colon_space_round_trip():
    cache = CalibrationCache.from_ranges(TensorRanges("minmax", {"a: b": (-1.0, 2.0)}))
    assert CalibrationCache.parse(cache.to_text()).scales["a: b"] == cache.scales["a: b"]


@pytest.mark.parametrize(
    "text, where",
    [("", "empty"), ("TRT-x-Entropy\n", "line 1"), ("TRT-8601-EntropyCalibration2\ninput 3f800000\n", "line 2"),
     ("TRT-8601-EntropyCalibration2\ninput: zzzz\n", "line 2")],
)
def test_malformed_cache_is_refused_with_the_line_named(text, where):
    with pytest.raises(CalibrationError, match=where):
        CalibrationCache.parse(text)


def test_cache_scales_equal_the_trt_qdq_activation_scales(se_int8_bundle):
    cache = read_cache(se_int8_bundle.verify("model.int8.calib.cache"))
    model = onnx.load(str(se_int8_bundle.verify("model.int8.trt.onnx")))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    compared = 0
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        if q.input[0] in inits:  # weight Q/DQ pairs are not in the cache
            continue
        assert q.input[0] in cache.scales, f"activation {q.input[0]} has no cache entry"
        assert inits[q.input[1]].tobytes() == cache.scales[q.input[0]].tobytes(), q.input[0]
        compared += 1
    assert compared >= 10


def test_cache_tensor_names_are_tensors_of_the_fp32_model(se_int8_bundle):
    cache = read_cache(se_int8_bundle.verify("model.int8.calib.cache"))
    model = onnx.load(str(se_int8_bundle.verify("model.onnx")))
    names = {t for n in model.graph.node for t in n.output} | {i.name for i in model.graph.input}
    assert set(cache.scales) <= names
