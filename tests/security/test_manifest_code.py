"""Item 1: nothing a manifest names is ever imported or executed.

A bundle exported from a user model file is rebuilt only from a file the user names again
(``--model``, checked against the recorded sha256) or with ``--trust-bundle-code``.
"""

from __future__ import annotations

import pytest
from trust_helpers import copy_bundle, evil_model, manifest, one_line, run_cli, sha256, write_manifest


def _hostile(bundle, tmp_path, *, keep_user_file: bool):
    """Point the manifest's model.spec at a file that writes a marker when imported."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.py"
    evil.write_text(evil_model(bundle.parent / "tiny_model.py", marker))
    b = copy_bundle(bundle, tmp_path / "b")
    m = manifest(b)
    m["model"]["spec"] = f"{evil}:build"
    m["model"]["user_file"] = {"path": str(evil), "sha256": sha256(evil)} if keep_user_file else None
    write_manifest(b, m)
    return b, marker


@pytest.mark.parametrize("keep_user_file", [True, False], ids=["user-file-recorded", "user-file-null"])
def test_validate_never_imports_the_file_a_manifest_names(user_bundle, tmp_path, keep_user_file):
    b, marker = _hostile(user_bundle[0], tmp_path, keep_user_file=keep_user_file)
    r = run_cli("validate", b)
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert "never imports code a manifest names" in line and "--model" in line and "--trust-bundle-code" in line
    assert not marker.exists()


def test_quantize_never_imports_the_file_a_manifest_names(user_bundle, tmp_path):
    b, marker = _hostile(user_bundle[0], tmp_path, keep_user_file=True)
    r = run_cli("quantize", b, "--precision", "fp16", "--json")
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    fp16_checks = [c for c in manifest(b)["checks"] if c.get("artifact") == "model.fp16.onnx"]
    assert fp16_checks and all("FP32 ONNX" in c["reference"] for c in fp16_checks)


def test_model_flag_rebuilds_the_reference_from_the_users_own_file(user_bundle, tmp_path):
    bundle, model = user_bundle
    b = copy_bundle(bundle, tmp_path / "b")
    moved = tmp_path / "elsewhere.py"
    moved.write_text(model.read_text())
    m = manifest(b)
    m["model"]["spec"] = f"{tmp_path / 'gone.py'}:build"  # the recorded path no longer exists
    write_manifest(b, m)
    r = run_cli("validate", b, "--model", f"{moved}:build")
    assert r.returncode == 0, r.stderr
    assert "checks passed" in r.stdout


def test_model_flag_refuses_a_file_that_is_not_the_exported_one(user_bundle, tmp_path):
    bundle, model = user_bundle
    marker = tmp_path / "PWNED"
    other = tmp_path / "other.py"
    other.write_text(evil_model(model, marker))
    r = run_cli("validate", bundle, "--model", f"{other}:build")
    assert r.returncode == 2
    assert "sha256 differs" in one_line(r.stderr)
    assert not marker.exists()


def test_trust_bundle_code_says_what_it_imports(user_bundle, tmp_path):
    b = copy_bundle(user_bundle[0], tmp_path / "b")
    r = run_cli("validate", b, "--trust-bundle-code")
    assert r.returncode == 0, r.stderr
    assert f"importing {manifest(b)['model']['spec']}" in " ".join(r.stderr.split())  # rich wraps lines
