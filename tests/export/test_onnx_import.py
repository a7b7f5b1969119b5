"""ONNX model in: ``edge-se export model.onnx`` on files that real exporters wrote.

The ONNX files come from the export stage itself (a trained digits bundle's ``model.onnx``) and
from ``torch.onnx.export`` at a fixed batch, so the import is tested on what users receive.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main
from edge_se.reference.check import SECOND_BATCH


@pytest.fixture(scope="module")
def trained(export_cached):
    """The trained se_digits bundle (ONNX only) and a preprocessing file naming its recipe."""
    from edge_se.data.cache import cached_digits_checkpoint

    return export_cached("se_digits", (1, 1, 32, 32), checkpoint=cached_digits_checkpoint("se"), formats="onnx")


@pytest.fixture(scope="module")
def files(trained, tmp_path_factory):
    """``se.onnx`` (dynamic batch, from the export stage), ``static.onnx`` (batch 1, torch.onnx.export),
    ``flat.onnx`` (a Reshape to [1, -1]: the batch is baked in) and ``pre.json``."""
    import warnings

    import torch

    from edge_se.reference.rebuild import reference_module

    root = tmp_path_factory.mktemp("onnx-in")
    shutil.copy(trained.path("model.onnx"), root / "se.onnx")
    module = reference_module(trained)

    def to_onnx(m, path: Path, **kw) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter's notice
            torch.onnx.export(m, torch.zeros(1, 1, 32, 32), str(path), dynamo=False, opset_version=17, **kw)

    to_onnx(module, root / "static.onnx", input_names=["image"], output_names=["logits"])

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.fc = torch.nn.Linear(2 * 30 * 30, 10)

        def forward(self, x):
            return self.fc(self.conv(x).reshape(1, -1))

    torch.manual_seed(0)
    to_onnx(Flat().eval(), root / "flat.onnx")
    (root / "pre.json").write_text(json.dumps({"preprocessing": trained.manifest["preprocessing"]}))
    return root


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_exported_onnx_becomes_a_bundle_with_an_onnx_runtime_reference(files, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["-q", "export", str(files / "se.onnx"), "--out", str(out), "--preprocessing", str(files / "pre.json")]) == 0
    m = _manifest(out)
    assert m["model"]["source"] == "onnx" and m["model"]["reference"]["backend"] == "onnxruntime"
    assert m["model"]["dynamic_batch"] is True and m["model"]["input_shape"] == [1, 1, 32, 32]
    assert m["preprocessing"]["color"] == "GRAY"
    numerics = [c for c in m["checks"] if c["name"].startswith("numerics/")]
    assert {c["batch"] for c in numerics} == {1, SECOND_BATCH} and all(c["passed"] for c in numerics)
    assert all("imported ONNX file" in c["reference"] for c in numerics)
    # the reference is the file as given, kept and hashed
    from edge_se.bundle import sha256_file

    assert m["model"]["reference"]["entry"]["sha256"] == sha256_file(files / "se.onnx")
    # the next stages run on it: re-validation, FP16, the runtime
    assert main(["-q", "validate", str(out)]) == 0
    assert main(["-q", "quantize", str(out), "--precision", "fp16"]) == 0
    from edge_se.runtime import Runtime

    with Runtime.load(out) as rt:
        x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
        assert rt.predict(x).shape == (3, 10)


def test_the_validation_report_names_onnx_runtime_as_the_reference(files, tmp_path):
    out = tmp_path / "b"
    assert main(["-q", "export", str(files / "se.onnx"), "--out", str(out), "--preprocessing", str(files / "pre.json")]) == 0
    assert main(["-q", "validate", str(out), "--digits", "--limit", "64", "--precisions", "fp32,fp16",
                 "--latency-seconds", "0.05", "--batch-sizes", "1", "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["reference"]["backend"] == "onnxruntime"
    assert report["reference"]["accuracy"] > 0.9  # the trained net, run from its ONNX file
    assert "ONNX Runtime FP32 reference accuracy" in (tmp_path / "rep" / "report.md").read_text()
    fp32 = next(r for r in report["rows"] if r["precision"] == "fp32")
    # gates are compared with the FP32 ONNX gates, not reported missing
    assert fp32["fidelity"]["blocks"] and all("error" not in b for b in fp32["fidelity"]["blocks"])


def test_a_fixed_batch_is_made_dynamic_when_the_graph_allows(files, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(files / "static.onnx"), "--out", str(out), "--preprocessing", str(files / "pre.json")]) == 0
    assert "made the fixed batch 1 dynamic" in capsys.readouterr().err
    m = _manifest(out)
    assert m["model"]["dynamic_batch"] is True
    assert m["artifacts"]["model.onnx"]["inputs"][0] == {"name": "image", "shape": ["batch", 1, 32, 32], "dtype": "float32"}
    assert {c["batch"] for c in m["checks"] if c["name"].startswith("numerics/")} == {1, SECOND_BATCH}


def test_a_baked_in_batch_stays_fixed_and_says_why(files, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(files / "flat.onnx"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "kept the fixed batch 1" in err and "Gemm" in err
    m = _manifest(out)
    assert m["model"]["dynamic_batch"] is False
    assert {c["batch"] for c in m["checks"] if c["name"].startswith("numerics/")} == {1}
    assert main(["-q", "validate", str(out)]) == 0


def test_a_newer_opset_is_converted_down_and_validated(files, tmp_path, capsys):
    import onnx
    from onnx import version_converter

    newer = version_converter.convert_version(onnx.load(str(files / "se.onnx")), 18)
    onnx.save(newer, str(tmp_path / "se18.onnx"))
    out = tmp_path / "b"
    assert main(["export", str(tmp_path / "se18.onnx"), "--out", str(out), "--opset", "17",
                 "--preprocessing", str(files / "pre.json")]) == 0
    assert "opset 18 -> 17" in capsys.readouterr().err
    m = _manifest(out)
    assert m["artifacts"]["model.onnx"]["opset"] == 17
    assert all(c["passed"] for c in m["checks"])


def test_a_tampered_reference_is_refused(files, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["-q", "export", str(files / "se.onnx"), "--out", str(out), "--preprocessing", str(files / "pre.json")]) == 0
    ref = out / "reference.onnx"
    ref.write_bytes(ref.read_bytes()[:-8] + b"\0" * 8)
    capsys.readouterr()
    assert main(["-q", "validate", str(out)]) == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "reference.onnx" in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["garbage", "missing", "two-inputs", "checkpoint", "formats", "shape"])
def test_bad_onnx_input_is_one_line_exit_2_and_no_folder(files, tmp_path, capsys, case):
    src = files / "se.onnx"
    extra: list[str] = []
    if case == "garbage":
        src = tmp_path / "bad.onnx"
        src.write_bytes(b"this is not protobuf" * 10)
    elif case == "missing":
        src = tmp_path / "nope.onnx"
    elif case == "two-inputs":
        import onnx
        from onnx import helper

        g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "two",
                              [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 1, 4, 4]) for n in "ab"],
                              [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1, 1, 4, 4])])
        src = tmp_path / "two.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    elif case == "checkpoint":
        extra = ["--checkpoint", str(src)]
    elif case == "formats":
        extra = ["--formats", "onnx,pt2"]
    elif case == "shape":
        extra = ["--input-shape", "1x3x32x32"]
    out = tmp_path / "b"
    assert main(["-q", "export", str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edge-se export: error:") and "Traceback" not in err
    assert not out.exists()
