"""Items 6 and 7: ``--force`` replaces only what edge-se made; two writers never lose each other's work."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
def _cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_se.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kw)


def _export(out: Path, *extra) -> subprocess.CompletedProcess:
    return _cli("-q", "export", "se_digits", "--out", out, *extra)


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "b"
    r = _export(out)
    assert r.returncode == 0, r.stderr
    return out


def test_force_never_deletes_a_folder_edge_se_did_not_make(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    r = _export(thesis, "--force")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "not an edge-se bundle" in line and "--force" not in line.split(";")[-1]
    assert (thesis / "chapter1.tex").read_text() == "years of work"


def test_force_refuses_a_folder_whose_manifest_is_not_parseable(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text("{not json")
    (fake / "notes.txt").write_text("keep")
    assert _export(fake, "--force").returncode == 2
    assert (fake / "notes.txt").is_file()


def test_force_replaces_an_edge_se_bundle_and_an_empty_folder_is_used(tmp_path, digits_bundle):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(digits_bundle, b)
    (b / "stale.txt").write_text("x")
    assert _export(b).returncode == 2  # a bundle without --force: refused
    r = _export(b, "--force")
    assert r.returncode == 0, r.stderr
    assert not (b / "stale.txt").exists() and (b / "manifest.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _export(empty).returncode == 0


def test_two_quantize_runs_at_once_keep_both_artifacts(tmp_path, digits_bundle, small_calib_spec):
    import json
    import shutil

    b = tmp_path / "b"
    shutil.copytree(digits_bundle, b)
    spec = small_calib_spec
    cmd = [sys.executable, "-m", "edge_se.cli", "-q", "quantize", str(b)]
    p16 = subprocess.Popen([*cmd, "--precision", "fp16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p8 = subprocess.Popen([*cmd, "--precision", "int8", "--calib", str(spec), "--policy", "all",
                           "--weight-rounding", "nearest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out16, out8 = p16.communicate(timeout=600), p8.communicate(timeout=600)
    assert p16.returncode == 0, out16[1]
    assert p8.returncode == 0, out8[1]
    artifacts = json.loads((b / "manifest.json").read_text())["artifacts"]
    assert {"model.fp16.onnx", "model.int8.cpu.onnx", "model.int8.trt.onnx"} <= set(artifacts)
    on_disk = {p.name for p in b.iterdir() if not p.name.startswith(".")} - {"manifest.json"}
    listed = {f["path"] for rec in artifacts.values() for f in rec["files"]}
    assert on_disk == listed  # no orphan file, nothing missing
    assert_intact(b)


def test_a_second_writer_names_the_holder_when_it_gives_up(tmp_path, digits_bundle):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(digits_bundle, b)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom edge_se.bundle import bundle_lock\n"
         f"with bundle_lock({str(b)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        r = _cli("quantize", b, "--precision", "fp16", env={**_env(), "EDGE_SE_LOCK_TIMEOUT": "1"})
        assert r.returncode == 2
        last = r.stderr.strip().splitlines()[-1]
        assert f"PID {holder.pid}" in last and "another edge-se process" in last
        assert f"waiting for PID {holder.pid}" in r.stderr
        assert time.monotonic() - t0 < 60
    finally:
        holder.kill()
        holder.wait()


def assert_intact(folder: Path) -> None:
    """Every artifact file the manifest lists exists inside the bundle with its recorded sha256."""
    from edge_se.bundle import Bundle

    bundle = Bundle.open(folder)
    for name in bundle.artifacts:
        bundle.verify(name)


def _env() -> dict:
    import os

    return dict(os.environ)
