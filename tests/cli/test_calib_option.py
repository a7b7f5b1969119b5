"""``--calib PATH`` is the one calibration option of quantize and build; build's old spellings are hidden aliases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import build_parser, main
from edge_se.tensorrt.build import split_calib
from edge_se.errors import InputError


@pytest.fixture(scope="module")
def calib_set(tmp_path_factory, small_calib_spec) -> Path:
    """A calibration set folder made by 'edge-se calibrate'."""
    out = tmp_path_factory.mktemp("calib") / "set"
    assert main(["-q", "calibrate", str(small_calib_spec), "--out", str(out), "--count", "8"]) == 0
    return out


@pytest.fixture
def cache_file(tmp_path) -> Path:
    """A TensorRT calibration cache written by the quantize stage's own writer."""
    from edge_se.quantize.trt_cache import CalibrationCache, write_cache

    path = tmp_path / "model.int8.calib.cache"
    write_cache(path, CalibrationCache(version="8601", algorithm="MinMaxCalibration",
                                       scales={"input": np.float32(0.01)}))
    return path


def test_quantize_and_build_both_spell_it_calib():
    parser = build_parser()
    for argv in (["quantize", "B", "--precision", "int8", "--calib", "c"], ["build", "B", "--recipe", "r", "--calib", "c"]):
        assert str(parser.parse_args(argv).calib) == "c"


def test_old_build_spellings_are_hidden_from_help(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "--calib PATH" in out and "--calibration-cache" not in out and "--calibration-set" not in out


def test_a_calibration_set_folder_and_a_cache_file_are_told_apart(calib_set, cache_file):
    assert split_calib(calib_set) == (None, calib_set)
    assert split_calib(cache_file) == (cache_file, None)


@pytest.mark.parametrize("make", ["text", "bundle", "empty_dir", "missing"])
def test_anything_else_is_one_clear_line(make, tmp_path, digits_bundle_src):
    path = {"text": tmp_path / "notes.txt", "bundle": digits_bundle_src, "empty_dir": tmp_path / "d",
            "missing": tmp_path / "none"}[make]
    if make == "text":
        path.write_text("not a cache\n")
    if make == "empty_dir":
        path.mkdir()
    with pytest.raises(InputError) as e:
        split_calib(path)
    msg = str(e.value)
    assert msg.startswith(f"--calib {path}") and "\n" not in msg


def test_build_refuses_a_wrong_calib_before_building(digits_bundle, fp16_recipe, tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 binary")
    assert main(["build", str(digits_bundle), "--recipe", str(fp16_recipe), "--calib", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--calib" in err and "calibration cache" in err


def test_deprecated_spelling_still_works_with_one_note(digits_bundle, fp16_recipe, cache_file, capsys):
    assert main(["-q", "build", str(digits_bundle), "--recipe", str(fp16_recipe), "--script-only", "10.3",
                 "--calibration-cache", str(cache_file)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: --calibration-cache is deprecated; use --calib PATH"]


def test_calib_and_an_old_spelling_together_are_refused(digits_bundle, fp16_recipe, cache_file, calib_set, capsys):
    assert main(["build", str(digits_bundle), "--recipe", str(fp16_recipe), "--calib", str(cache_file),
                 "--calibration-set", str(calib_set)]) == 2
    assert "give --calib only" in capsys.readouterr().err
