"""``edge-se calibrate``: options have effects, errors are one line with exit code 2."""

from __future__ import annotations

import json

from calib_helpers import folder_spec

from edge_se.calibration import load_calibration_set
from edge_se.cli import main


def test_calibrate_builds_the_set_and_prints_json(tmp_path, image_folder, capsys):
    rc = main(["calibrate", str(folder_spec(tmp_path, 6)), "--out", str(tmp_path / "set"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 6 and summary["shape"] == [6, 3, 16, 16]
    assert load_calibration_set(tmp_path / "set").sha256 == summary["sha256"]


def test_count_option_overrides_the_spec(tmp_path, image_folder):
    assert main(["calibrate", str(folder_spec(tmp_path, 6)), "--out", str(tmp_path / "set"), "--count", "3"]) == 0
    assert load_calibration_set(tmp_path / "set").count == 3


def test_force_option_replaces_an_existing_set(tmp_path, image_folder, capsys):
    spec, out = str(folder_spec(tmp_path, 6)), str(tmp_path / "set")
    assert main(["calibrate", spec, "--out", out]) == 0
    assert main(["calibrate", spec, "--out", out, "--count", "2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["calibrate", spec, "--out", out, "--count", "2", "--force"]) == 0
    assert load_calibration_set(out).count == 2


def test_skip_bad_option_skips_a_corrupt_file(tmp_path, image_folder, capsys):
    (image_folder / "cat" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken jpeg")
    spec, out = str(folder_spec(tmp_path, 14)), str(tmp_path / "set")
    assert main(["calibrate", spec, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.jpg" in err and len(err.splitlines()) == 1
    assert main(["calibrate", spec, "--out", out, "--skip-bad"]) == 0
    assert "skipped 1 undecodable: cat/bad.jpg" in capsys.readouterr().out


def test_too_few_images_is_a_one_line_error_with_exit_code_2(tmp_path, image_folder, capsys):
    rc = main(["calibrate", str(folder_spec(tmp_path, 6)), "--out", str(tmp_path / "set"), "--count", "99"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "holds only 14 images" in err
    assert not (tmp_path / "set").exists()
