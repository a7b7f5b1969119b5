"""Bad ``edge-se export`` input exits 2 with one line (what, where, how to fix), never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_se.cli import main


def _export(capsys, *args: str) -> tuple[int, str]:
    code = main(["-q", "export", *args])
    return code, capsys.readouterr().err.strip()


def _one_line_exit_2(code: int, err: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "shape, expect",
    [
        ("1x1x100000x100000", "GiB as float32"),
        ("1x1x" + "1" * 20 + "x32", "more than the 1048576"),
        ("", "malformed"),
        ("1x-1x32x32", "only the batch dim may be -1"),
    ],
)
def test_absurd_or_empty_input_shape_is_refused_before_allocating(capsys, tmp_path, shape, expect):
    out = tmp_path / "b"
    code, err = _export(capsys, "se_digits", "--input-shape", shape, "--out", str(out))
    _one_line_exit_2(code, err)
    assert "--input-shape" in err and expect in err
    assert not out.exists()


def test_huge_shape_from_the_python_api_is_refused(tmp_path):
    from edge_se.errors import InputError
    from edge_se.export.pipeline import export_bundle

    with pytest.raises(InputError, match="elements"):
        export_bundle("se_digits", (1, 1, 2**16, 2**16), tmp_path / "b")


def test_leading_minus_one_batch_means_dynamic_batch(capsys, tmp_path):
    out = tmp_path / "b"
    code, err = _export(capsys, "se_digits", "--input-shape", "-1x1x32x32", "--out", str(out), "--json")
    assert code == 0, err
    model = json.loads((out / "manifest.json").read_text())["model"]
    assert model["input_shape"] == [1, 1, 32, 32] and model["dynamic_batch"] is True


def test_minus_one_batch_with_static_batch_is_refused(capsys, tmp_path):
    code, err = _export(capsys, "se_digits", "--input-shape=-1x1x32x32", "--static-batch", "--out", str(tmp_path / "b"))
    _one_line_exit_2(code, err)
    assert "dynamic batch" in err and "--static-batch" in err


def test_out_under_an_existing_file_is_refused(capsys, tmp_path):
    (tmp_path / "afile").write_text("mine")
    code, err = _export(capsys, "se_digits", "--out", str(tmp_path / "afile" / "sub" / "b"))
    _one_line_exit_2(code, err)
    assert "--out" in err and "is a file" in err and "choose a writable folder" in err
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc filesystem")
def test_out_in_proc_is_refused(capsys):
    code, err = _export(capsys, "se_digits", "--out", "/proc/edge-se-bundle")
    _one_line_exit_2(code, err)
    assert "--out /proc/edge-se-bundle: cannot create a folder in /proc" in err and "choose a writable folder" in err


def test_non_utf8_out_is_refused(capsys, tmp_path):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bundle-\xff")
    code, err = _export(capsys, "se_digits", "--out", out)
    _one_line_exit_2(code, err)
    assert "not valid UTF-8" in err and "\\xff" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("out, what", [(".", "the current folder"), ("..", "a folder above the current folder"),
                                       ("/", "the filesystem root")])
def test_out_replacing_the_current_folder_an_ancestor_or_root_is_refused(capsys, tmp_path, monkeypatch, out, what):
    # the current folder is an edge-se bundle, so --force would otherwise replace it
    assert main(["-q", "export", "se_digits", "--out", str(tmp_path / "cwd")]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "cwd")
    before = sorted(os.listdir("."))
    code, err = _export(capsys, "se_digits", "--out", out, "--force")
    _one_line_exit_2(code, err)
    assert what in err and "--out" in err
    assert Path.cwd() == (tmp_path / "cwd").resolve() and sorted(os.listdir(".")) == before


def test_empty_out_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _export(capsys, "se_digits", "--out", "")
    _one_line_exit_2(code, err)
    assert "--out is empty" in err
