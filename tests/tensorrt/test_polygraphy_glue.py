"""The thin layer between edge-se and Polygraphy that runs without TensorRT: the calibration data
loader (read inside TensorRT's callback, so it must never raise there) and the flavor switch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_se.errors import CalibrationError
from edge_se.tensorrt.calibrator import CalibrationBatches
from tests.tensorrt.conftest import ROOT


def batches(*sizes):
    return (np.full((n, 3, 4, 4), i, dtype=np.float64) for i, n in enumerate(sizes))


def test_loader_feeds_float32_batches_under_the_input_name():
    feeds = list(CalibrationBatches(batches(2, 2), 2, "images"))
    assert [list(f) for f in feeds] == [["images"], ["images"]]
    assert feeds[1]["images"].dtype == np.float32 and feeds[1]["images"].flags.c_contiguous
    assert float(feeds[1]["images"][0, 0, 0, 0]) == 1.0


def test_loader_uses_the_network_input_name_polygraphy_gives_it():
    loader = CalibrationBatches(batches(2), 2, "input")
    loader.input_metadata = {"x.1": None}  # what CreateConfig sets from the parsed network
    assert list(next(iter(loader))) == ["x.1"]


def test_a_short_last_batch_ends_calibration():
    loader = CalibrationBatches(batches(2, 2, 1), 2, "input")
    assert len(list(loader)) == 2 and loader.used == 2
    loader.raise_error()  # nothing went wrong


def test_a_failing_calibration_set_ends_calibration_and_is_raised_after_the_build():
    def broken():
        yield np.zeros((2, 3, 4, 4), np.float32)
        raise OSError("sample 7.png is truncated")

    loader = CalibrationBatches(broken(), 2, "input")
    assert len(list(loader)) == 1  # no exception into TensorRT's get_batch
    with pytest.raises(CalibrationError, match="OSError: sample 7.png is truncated"):
        loader.raise_error()


def test_no_calibration_set_when_tensorrt_asks_for_data_names_the_fix():
    loader = CalibrationBatches(None, 2, "input")
    assert list(loader) == []
    with pytest.raises(CalibrationError, match="pass --calib"):
        loader.raise_error()


def test_polygraphy_serves_one_tensorrt_flavor_per_process():
    pytest.importorskip("polygraphy", reason="needs polygraphy (edge-se[tensorrt])")
    code = ("from edge_se.runtime.backends.trt_polygraphy import import_polygraphy\n"
            "import polygraphy.config as c\n"
            "import_polygraphy('tensorrt_rtx'); assert c.USE_TENSORRT_RTX\n"
            "try:\n    import_polygraphy('tensorrt')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("InputError") and "already set to tensorrt_rtx" in out.stdout
