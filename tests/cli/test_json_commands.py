"""--json on validate, build, report, clean and the serving exports, on a bundle the export stage made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_se.cli import main


def _json(capsys) -> tuple[dict, str]:
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_validate_json_after_the_command_summarizes_the_checks(digits_bundle, capsys):
    assert main(["validate", str(digits_bundle), "--json", "-q"]) == 0
    doc, err = _json(capsys)
    assert doc["command"] == "validate" and doc["ok"] is True and doc["matrix"] is None
    assert doc["bundle"] == str(digits_bundle) and Path(doc["manifest"]).is_file()
    assert doc["checks"]["total"] == len(doc["results"]) > 0 and doc["checks"]["passed"] == doc["checks"]["total"]
    assert {r["artifact"] for r in doc["results"]} >= {"model.onnx"}
    assert err == ""  # -q after the command silenced the stage lines


def test_validate_json_before_the_command_end_to_end(digits_bundle):
    r = subprocess.run([sys.executable, "-m", "edge_se", "-q", "--json", "validate", str(digits_bundle)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["checks"]["passed"] == doc["checks"]["total"] > 0


def test_validate_json_keeps_progress_on_stderr(digits_bundle, capsys):
    assert main(["--json", "validate", str(digits_bundle)]) == 0
    doc, err = _json(capsys)
    assert doc["ok"] and "done Validating" in err


def test_validate_matrix_and_report_json_name_the_files(digits_bundle, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["validate", str(digits_bundle), "--precisions", "fp32", "--policies", "all", "--batch-sizes", "1",
                 "--limit", "4", "--latency-seconds", "0.05", "--out", str(out), "--json", "-q"]) == 0
    doc, err = _json(capsys)
    matrix = doc["matrix"]
    assert matrix["passed"] and matrix["out"] == str(out)
    assert Path(matrix["files"]["json"]).is_file() and Path(matrix["files"]["html"]).is_file()
    assert [(r["precision"], r["backend"]) for r in matrix["rows"]] == [("fp32", "ort")]
    assert "|" in err  # the matrix table went to stderr, not into the JSON document
    shared = tmp_path / "shared"
    assert main(["report", str(out), "--out", str(shared), "--json"]) == 0
    rep, _ = _json(capsys)
    assert rep["command"] == "report" and rep["out"] == str(shared) and rep["passed"] is True
    assert {"json", "markdown", "html"} <= set(rep["files"])
    assert all(Path(p).is_file() for p in rep["files"].values())


def test_build_script_only_json_names_the_script(digits_bundle, fp16_recipe, capsys):
    assert main(["build", str(digits_bundle), "--recipe", str(fp16_recipe), "--script-only", "10.3", "--json"]) == 0
    doc, err = _json(capsys)
    assert doc["command"] == "build" and doc["script_only"] and doc["tensorrt_version"] == "10.3"
    assert Path(doc["script"]).is_file() and doc["engine"] is None
    assert "wrote" in err


def test_clean_json(digits_bundle, capsys):
    assert main(["-q", "clean", str(digits_bundle), "--json"]) == 0
    doc, _ = _json(capsys)
    assert doc == {"command": "clean", "ok": True, "bundle": str(digits_bundle), "handled": []}


def test_export_triton_json(digits_bundle, tmp_path, capsys):
    pytest.importorskip("tritonclient")
    assert main(["export-triton", str(digits_bundle), "--out", str(tmp_path / "repo"), "--json", "-q"]) == 0
    doc, _ = _json(capsys)
    assert doc["command"] == "export-triton" and (Path(doc["model_dir"]) / "config.pbtxt").is_file()


def test_export_deepstream_json(digits_bundle, tmp_path, capsys):
    assert main(["export-deepstream", str(digits_bundle), "--out", str(tmp_path / "ds"), "--json", "-q"]) == 0
    doc, _ = _json(capsys)
    assert doc["command"] == "export-deepstream" and Path(doc["config"]).is_file() and doc["precision"] == "fp32"
