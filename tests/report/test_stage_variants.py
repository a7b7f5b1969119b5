"""A precision or policy the bundle lacks is measured on the very file the quantize stage makes.

The matrix runs the public quantize API on a scratch subset of the bundle
(:mod:`edge_se.validate.stage_variants`); these tests hold it to what ``edge-se quantize`` itself
publishes, and show a run the stage refuses becoming a failed row rather than a crash.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_se.bundle import Bundle, sha256_file
from edge_se.cli import main
from edge_se.validate.eval_data import EvalData, evaluation_data


def test_a_made_int8_file_is_the_one_edge_se_quantize_publishes(matrix_report, tmp_path):
    report, _ = matrix_report
    rows = {(r["precision"], r["policy"]): r for r in report["rows"]}
    made = rows[("int8", "keep-gates")]
    assert made["created_for_report"] and made["artifact"] == "model.int8.cpu.keep-gates.onnx"
    assert any("made here by the quantize stage" in n for n in report["notes"])
    # the CLI on a plain copy of the bundle, calibrated on the data the matrix drew (it is seeded)
    bundle = Bundle.open(report["bundle"])
    data = evaluation_data(bundle, bundle.preprocessing(), limit=16)
    np.save(tmp_path / "calib.npy", data.calib_x)
    copy = tmp_path / "copy"
    shutil.copytree(bundle.root, copy)
    assert main(["quantize", str(copy), "--precision", "int8", "--calib", str(tmp_path / "calib.npy"),
                 "--policy", "keep-gates", "-q"]) == 0
    assert sha256_file(Path(made["path"])) == sha256_file(copy / "model.int8.cpu.onnx")
    record = json.loads((copy / "manifest.json").read_text())["artifacts"]["model.int8.cpu.onnx"]
    assert made["kept_in_float"] == [b["name"] for b in record["kept_in_float"]["kept_in_float"]] != []
    assert made["int8_mac_share"] == record["kept_in_float"]["int8_mac_share"]
    # the matrix never writes the bundle it measures
    assert "model.int8.cpu.onnx" not in bundle.artifacts and not (bundle.root / "model.int8.cpu.onnx").exists()


def test_a_run_the_stage_refuses_is_a_failed_row_and_the_others_are_measured(matrix_report, tmp_path, monkeypatch):
    from edge_se.validate import matrix

    report, _ = matrix_report

    def wrong_size_calibration(*args, **kwargs) -> EvalData:
        data = evaluation_data(*args, **kwargs)
        return EvalData(data.x, data.y, data.description, data.calib_x[:, :, :16, :16], None, "16x16 crops")

    monkeypatch.setattr(matrix, "evaluation_data", wrong_size_calibration)
    out = matrix.run_matrix(report["bundle"], precisions=("fp32", "int8"), policies=("all",), out=tmp_path / "r",
                            batch_sizes=(1,), limit=4, latency_seconds=0.1)
    rows = {(r["precision"], r["policy"]): r for r in out["rows"]}
    assert rows[("fp32", "-")]["numerics"]["passed"]
    error = rows[("int8", "all")]["error"]
    assert error.startswith("edge-se quantize --precision int8 --policy all refused:") and "16" in error
    assert out["passed"] is False
    assert not list((tmp_path / "r").glob(".made-*"))  # the scratch bundles are gone


def test_a_static_batch_bundle_is_refused_in_one_line(tmp_path, capsys):
    from edge_se.export.pipeline import export_bundle

    export_bundle("se_digits", (1, 1, 32, 32), tmp_path / "b", dynamic_batch=False)
    assert main(["validate", str(tmp_path / "b"), "--precisions", "fp32", "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "static batch of 1" in err[0] and "--static-batch" in err[0]


@pytest.fixture()
def small_bundle(tmp_path) -> Bundle:
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    export_bundle("se_digits", (1, 1, 32, 32), tmp_path / "bundle")
    return Bundle.open(tmp_path / "bundle")


def test_a_bundle_subset_holds_the_named_artifacts_hard_linked_and_checked(small_bundle, tmp_path):
    from edge_se.errors import BundleError, IntegrityError

    sub = small_bundle.subset(tmp_path / "sub", ["model.onnx"])
    assert list(sub.artifacts) == ["model.onnx"] and sub.manifest["checks"] == []
    assert sub.manifest["model"] == small_bundle.manifest["model"]
    assert (sub.root / "model.onnx").stat().st_ino == small_bundle.path("model.onnx").stat().st_ino
    assert Bundle.open(sub.root).verify("model.onnx")
    with pytest.raises(BundleError, match="not an empty folder"):
        small_bundle.subset(sub.root, ["model.onnx"])
    with pytest.raises(BundleError, match="no artifact 'model.nope'"):
        small_bundle.subset(tmp_path / "sub2", ["model.nope"])
    data = small_bundle.path("model.onnx").read_bytes()
    small_bundle.path("model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        small_bundle.subset(tmp_path / "sub3", ["model.onnx"])
    assert not (tmp_path / "sub3").exists()  # nothing half-made is left
