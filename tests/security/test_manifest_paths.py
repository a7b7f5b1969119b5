"""Items 4 and 5: every file a bundle names stays inside it and is sha256-checked; malformed
manifests are refused with one line naming the field."""

from __future__ import annotations

import os

import pytest
from trust_helpers import copy_bundle, manifest, one_line, run_cli, sample_image, sha256, write_manifest


@pytest.fixture
def bundle(user_bundle, tmp_path):
    return copy_bundle(user_bundle[0], tmp_path / "b")


def _point_onnx_at(b, rel):
    m = manifest(b)
    rec = m["artifacts"]["model.onnx"]
    rec["path"] = rec["files"][0]["path"] = rel
    write_manifest(b, m)


@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_artifact_path_outside_the_bundle_is_refused(bundle, tmp_path, where):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "model.onnx").read_bytes())
    rel = "../outside.onnx" if where == "dotdot" else str(outside)
    _point_onnx_at(bundle, rel)
    m = manifest(bundle)
    m["artifacts"]["model.onnx"]["files"][0]["sha256"] = sha256(outside)  # the attacker writes the hash too
    write_manifest(bundle, m)
    for cmd in (["predict", bundle, sample_image()], ["validate", bundle], ["bench", bundle, "--duration", "0.1"]):
        r = run_cli(*cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        line = one_line(r.stderr)
        assert rel in line and "outside the bundle" in line


def test_symlink_to_a_file_outside_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "outside.onnx"
    os.replace(bundle / "model.onnx", outside)
    os.symlink(outside, bundle / "model.onnx")
    r = run_cli("predict", bundle, sample_image())
    assert r.returncode == 2
    assert "outside" in one_line(r.stderr)


def test_tampered_labels_are_refused(bundle):
    (bundle / "labels.txt").write_text("cat\ndog\nbird\nEVIL\n")
    r = run_cli("predict", bundle, sample_image())
    assert r.returncode == 1
    assert "sha256 mismatch" in one_line(r.stderr) and "labels.txt" in r.stderr


def test_labels_path_outside_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "labels.txt"
    outside.write_text("a\nb\nc\nd\n")
    m = manifest(bundle)
    m["labels"] = {"path": "../labels.txt", "sha256": sha256(outside)}
    write_manifest(bundle, m)
    r = run_cli("predict", bundle, sample_image())
    assert r.returncode == 2
    assert "labels.path" in one_line(r.stderr)


def test_labels_are_recorded_with_their_sha256(bundle):
    entry = manifest(bundle)["labels"]
    assert entry["path"] == "labels.txt" and entry["sha256"] == sha256(bundle / "labels.txt")


@pytest.mark.parametrize("edit, field", [
    (lambda m: m["artifacts"]["model.onnx"].pop("files"), "files"),
    (lambda m: m["artifacts"]["model.onnx"].__setitem__("files", "model.onnx"), "files"),
    (lambda m: m["artifacts"]["model.onnx"]["files"][0].__setitem__("sha256", "$(touch x)"), "sha256"),
    (lambda m: m.__setitem__("preprocessing", ["not", "a", "table"]), "preprocessing"),
    (lambda m: m["artifacts"].__setitem__("model.onnx", 7), "model.onnx"),
], ids=["files-missing", "files-wrong-type", "sha256-not-hex", "preprocessing-wrong-type", "record-wrong-type"])
def test_malformed_manifest_records_give_one_line_naming_the_field(bundle, edit, field):
    m = manifest(bundle)
    edit(m)
    write_manifest(bundle, m)
    for cmd in (["predict", bundle, sample_image()], ["validate", bundle], ["inspect", bundle]):
        r = run_cli(*cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        assert field in one_line(r.stderr)


@pytest.mark.parametrize("option", ["--labels", "--preprocessing"])
def test_binary_labels_or_preprocessing_file_is_refused_in_one_line(bundle, tmp_path, option):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x81binary")
    r = run_cli("predict", bundle, sample_image(), option, binary)
    assert r.returncode == 2
    assert "not UTF-8" in one_line(r.stderr)


@pytest.mark.parametrize("edit, field", [
    (lambda m: m.pop("preprocessing"), "'preprocessing' table"),
    (lambda m: m["model"].__setitem__("input_shape", "1x3x16x16"), "model.input_shape"),
], ids=["preprocessing-missing", "input-shape-wrong-type"])
def test_stages_refuse_a_manifest_missing_what_they_need_in_one_line(bundle, edit, field):
    m = manifest(bundle)
    edit(m)
    write_manifest(bundle, m)
    for cmd in (["validate", bundle], ["quantize", bundle, "--precision", "fp16"]):
        r = run_cli(*cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        assert field in r.stderr.strip().splitlines()[-1] and "internal error" not in r.stderr
