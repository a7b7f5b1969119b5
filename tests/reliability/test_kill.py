"""Items 8 and 9: a killed stage leaves no residue the next run does not clean, and never a bundle
whose manifest and files disagree; Ctrl-C during publishing finishes the publish first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_force_and_concurrency import _cli, _export, assert_intact

INT8 = ("--precision", "int8", "--policy", "all", "--weight-rounding", "nearest")


def _kill_after(cmd: list[str], n_done: int) -> None:
    """Start ``edge-se CMD``; SIGKILL it right after its ``n_done``-th finished-stage line."""
    p = subprocess.Popen([sys.executable, "-m", "edge_se.cli", *cmd], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         text=True)
    seen = 0
    for line in p.stderr:
        if line.startswith("done "):
            seen += 1
            if seen == n_done:
                p.send_signal(signal.SIGKILL)
                break
    p.wait(timeout=300)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill") / "b"
    assert _export(out).returncode == 0
    return out


@pytest.mark.parametrize("n_done", range(1, 8))  # every stage marker of export
def test_export_killed_after_a_stage_leaves_nothing_the_next_run_keeps(tmp_path, n_done):
    out = tmp_path / "b"
    _kill_after(["export", "se_digits", "--out", str(out)], n_done)
    if out.exists():  # the kill came after the publishing rename
        assert _cli("validate", out).returncode == 0
    else:
        assert _export(out).returncode == 0  # no --force needed
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging folder survived


@pytest.mark.parametrize("n_done", range(1, 5))  # every stage marker of quantize
def test_quantize_killed_after_a_stage_is_cleaned_by_the_next_run(tmp_path, base, n_done, small_calib_spec):
    b = tmp_path / "b"
    shutil.copytree(base, b)
    spec = small_calib_spec
    temp = Path(tempfile.gettempdir())
    before = _edge_se_temp(temp)
    _kill_after(["quantize", str(b), "--calib", str(spec), *INT8], n_done)
    r = _cli("quantize", b, "--calib", spec, *INT8)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in b.iterdir() if p.name.startswith(".")] == []  # no staging, lock or journal left
    assert _edge_se_temp(temp) - before == set()
    assert_intact(b)


def _edge_se_temp(folder: Path) -> set[str]:
    """edge-se's entries in ``folder`` that are residue: no owner PID in the name, or a dead owner.
    A live edge-se run elsewhere on the machine keeps its own folders; those are not residue."""
    from edge_se.bundle import TEMP_PREFIXES, _owner_pid, _pid_alive

    out = set()
    for p in folder.iterdir():
        prefix = next((x for x in TEMP_PREFIXES if p.name.startswith(x)), None)
        if prefix is not None or p.name.startswith("edge-se-"):
            pid = _owner_pid(p.name, prefix) if prefix else None
            if pid is None or not _pid_alive(pid):
                out.add(p.name)
    return out


_PATCHED_RUN = """
import os, signal, sys
import edge_se.bundle as bundle
real = os.replace
moves = []
def replace(src, dst):
    real(src, dst)
    if ".quantize-" in str(src):  # the first staged artifact has just moved into the bundle
        moves.append(src)
        if len(moves) == 1:
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
bundle.os.replace = replace
from edge_se.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_kill_between_publishing_files_and_the_manifest_is_finished_by_the_next_writer(tmp_path, base):
    b = tmp_path / "b"
    shutil.copytree(base, b)
    r = subprocess.run([sys.executable, "-c", _PATCHED_RUN, "SIGKILL", "quantize", str(b), "--precision", "fp16"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL
    journal = b / ".edge-se.publish.json"
    assert journal.is_file()  # killed inside the publish step, after one of its moves
    assert "model.fp16.onnx" not in json.loads((b / "manifest.json").read_text())["artifacts"]
    v = _cli("validate", b)  # the next writer replays the journal first
    assert v.returncode == 0, v.stderr
    assert "model.fp16.onnx" in json.loads((b / "manifest.json").read_text())["artifacts"]
    assert not journal.exists() and not any(p.name.startswith(".quantize-") for p in b.iterdir())


def test_ctrl_c_while_publishing_finishes_the_publish_and_says_so_truthfully(tmp_path, base):
    b = tmp_path / "b"
    shutil.copytree(base, b)
    r = subprocess.run([sys.executable, "-c", _PATCHED_RUN, "SIGINT", "quantize", str(b), "--precision", "fp16"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 130, r.stderr
    assert "published whole" in r.stderr
    assert "model.fp16.onnx" in json.loads((b / "manifest.json").read_text())["artifacts"]
    assert _cli("predict", b, "--precision", "fp16", _photo()).returncode == 0  # sha256 verified on load


def test_clean_removes_only_what_dead_edge_se_runs_left(tmp_path, base):
    b = tmp_path / "b"
    shutil.copytree(base, b)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (b / f".quantize-{dead}-abc").mkdir()
    (b / f".model.onnx.{dead}-xyz.tmp").write_text("half")
    (tmp_path / f".b.staging-{dead}-q").mkdir()
    (b / ".quantize-notapid").mkdir()  # no PID: not ours to judge, kept
    (b / "user-notes.txt").write_text("keep")
    mine = b / f".quantize-{os.getpid()}-live"  # a live owner (this test): kept
    mine.mkdir()
    r = _cli("clean", b)
    assert r.returncode == 0, r.stderr
    names = {p.name for p in b.iterdir()}
    assert f".quantize-{dead}-abc" not in names and f".model.onnx.{dead}-xyz.tmp" not in names
    assert {".quantize-notapid", "user-notes.txt", mine.name} <= names
    assert not (tmp_path / f".b.staging-{dead}-q").exists()


def _photo() -> str:
    import sklearn.datasets

    return str(Path(sklearn.datasets.__file__).parent / "images" / "china.jpg")
