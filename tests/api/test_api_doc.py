"""docs/api.md: its example runs as written, and the API returns typed results, not dicts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory):
    """The doc's example executed in a fresh folder; returns its namespace."""
    import os

    blocks = _python_blocks()
    assert blocks, "docs/api.md has no python example"
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("api-doc"))
    try:
        ns: dict = {"__name__": "__api_doc__"}
        for code in blocks:
            exec(compile(code, str(DOC), "exec"), ns)
    finally:
        os.chdir(cwd)
    return ns


def test_the_documented_example_runs_and_each_step_did_its_work(doc_run):
    import edge_se
    from edge_se.api import BuildResult, ExportResult, QuantizeResult, ValidateResult

    exported, q, checked, built = doc_run["exported"], doc_run["q"], doc_run["checked"], doc_run["built"]
    assert isinstance(exported, ExportResult) and exported.passed and exported.artifacts == ("model.onnx",)
    assert exported.bundle.is_absolute() and (exported.bundle / "manifest.json").is_file()
    assert isinstance(q, QuantizeResult) and q.passed
    assert {d.artifact for d in q.decisions} >= {"model.int8.trt.onnx", "model.int8.cpu.onnx"}
    assert all(0.5 <= d.int8_mac_share <= 1.0 for d in q.decisions)
    # the module passed as model= was the reference (not the FP32 ONNX fallback)
    manifest = (exported.bundle / "manifest.json").read_text()
    assert "PyTorch model not rebuilt" not in manifest
    assert isinstance(checked, ValidateResult) and checked.passed and len(checked.checks) >= 8
    assert {c.artifact for c in checked.checks} >= {"model.onnx", "model.int8.cpu.onnx", "model.int8.trt.onnx"}
    assert isinstance(built, BuildResult) and built.script.is_file() and built.engine is None
    assert "--int8" in built.script.read_text() and "model.int8.trt.onnx" in built.script.read_text()
    assert doc_run["logits"].shape == (4, 10)
    assert isinstance(edge_se.Runtime.load(exported.bundle), edge_se.Runtime)


def test_the_stage_packages_are_the_api_calls(doc_run):
    import edge_se
    import edge_se.export.pipeline  # noqa: F401 - binds edge_se.export to the package
    from edge_se import api

    assert callable(edge_se.export) and callable(edge_se.quantize) and callable(edge_se.validate)
    assert edge_se.build is api.build and edge_se.Runtime is api.Runtime


def test_a_module_with_other_weights_is_refused_as_the_reference(doc_run):
    import copy

    import torch

    import edge_se
    from edge_se.errors import BundleError

    other = copy.deepcopy(doc_run["net"])  # the same layers ...
    with torch.no_grad():
        other[-1].weight.add_(1.0)  # ... other weights
    with pytest.raises(BundleError, match="different weights"):
        edge_se.validate(doc_run["exported"].bundle, model=other)


def test_model_options_reach_the_builder_and_the_rebuilt_reference(tmp_path):
    import json

    import edge_se

    r = edge_se.export("se_digits", (1, 1, 32, 32), tmp_path / "b", model_options={"num_classes": 4}, formats="onnx")
    m = json.loads((r.bundle / "manifest.json").read_text())
    assert m["model"]["options"] == {"num_classes": 4}
    assert m["artifacts"]["model.onnx"]["outputs"][0]["shape"][-1] == 4
    # validate rebuilds the PyTorch reference with the recorded option (else the shapes would differ)
    assert edge_se.validate(r.bundle).passed


@pytest.mark.parametrize("bad", [{"num_classes": [1, 2]}, {"not an identifier": 1}, {"num_classes": {"x": 1}}])
def test_model_options_must_be_plain_scalars(tmp_path, bad):
    import edge_se
    from edge_se.errors import InputError

    with pytest.raises(InputError):
        edge_se.export("se_digits", (1, 1, 32, 32), tmp_path / "b", model_options=bad, formats="onnx")
    assert not (tmp_path / "b").exists()


def test_cli_model_option(tmp_path, capsys):
    import json

    from edge_se.cli import main

    assert main(["-q", "export", "se_digits", "--input-shape", "1x1x32x32", "--formats", "onnx", "--model-option",
                 "num_classes=3", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["model"]["options"] == {"num_classes": 3}
    capsys.readouterr()
    assert main(["-q", "export", "se_digits", "--model-option", "num_classes", "--out", str(tmp_path / "c")]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_quantize_needs_calibration_data_for_int8(doc_run):
    import edge_se
    from edge_se.errors import CalibrationError

    with pytest.raises(CalibrationError, match="calib="):
        edge_se.quantize(doc_run["exported"].bundle, "int8")


def test_importing_edge_se_stays_cheap():
    import subprocess
    import sys

    code = "import sys, edge_se; edge_se.Runtime; print('torch' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_results_are_frozen(doc_run):
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        doc_run["exported"].artifacts = ()
    assert isinstance(np.asarray(doc_run["logits"]), np.ndarray)
