"""torch.export ``model.pt2`` in every bundle; ``--formats`` decides what must succeed; the pt2
runtime backend; a model torch.export cannot capture; a .pt2 read as data before it is loaded."""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile

import numpy as np
import pytest

from edge_se.bundle import Bundle, sha256_file
from edge_se.cli import main
from edge_se.errors import BundleError, InputError
from edge_se.export.formats import plan_formats
from edge_se.export.pipeline import export_bundle
from edge_se.runtime import Runtime
from edge_se.runtime.backends.pt2_archive import check_exported_program

from model_sources import NAN_GUARD



def _guard_model(tmp_path):
    path = tmp_path / "guard_model.py"
    path.write_text(textwrap.dedent(NAN_GUARD))
    return path


def test_formats_default_required_and_implied():
    default = plan_formats(None)
    assert default.wanted == ("onnx", "ts", "pt2") and default.required == {"onnx", "ts"}
    asked = plan_formats("aoti")
    assert asked.wanted == ("onnx", "pt2", "aoti") and asked.required == {"onnx", "pt2", "aoti"}
    with pytest.raises(InputError, match="unknown format tflite; choose from onnx, ts, pt2, aoti, pte"):
        plan_formats("onnx,tflite")


def test_pt2_runs_on_its_backend_like_onnx_and_splits_batches_above_its_range(export_cached):
    bundle = export_cached("se_digits", (1, 1, 32, 32))
    x = np.random.default_rng(3).standard_normal((11, 1, 32, 32)).astype(np.float32)
    with Runtime.load(bundle.root, backend="onnxruntime") as ort_rt, Runtime.load(bundle.root, backend="pt2") as pt2_rt:
        assert pt2_rt.inputs[0].batch_range == (1, 8)
        want, got = ort_rt.predict(x), pt2_rt.predict(x)  # 11 rows: split into chunks within 1..8
        assert got.shape == want.shape == (11, 10)
        np.testing.assert_allclose(got, want, atol=1e-4)
        with pytest.raises(InputError, match=r"batch 9 is outside the pt2 artifact's batch range \[1, 8\]"):
            pt2_rt.runner.infer({"input": x[:9]})
        assert pt2_rt.describe()["backend"] == "pt2"


def test_formats_without_ts_leaves_torchscript_out(tmp_path):
    bundle = export_bundle("se_digits", (1, 1, 16, 16), tmp_path / "b", formats="onnx,pt2", max_batch=4)
    assert sorted(bundle.artifacts) == ["model.onnx", "model.pt2"]
    assert bundle.artifact("model.pt2")["batch_range"] == [1, 4]
    assert all(c["passed"] for c in bundle.manifest["checks"])


def test_a_model_torch_export_cannot_capture_gets_a_bundle_without_pt2_and_a_log(tmp_path):
    model = _guard_model(tmp_path)
    bundle = export_bundle(f"{model}:build", (1, 3, 16, 16), tmp_path / "b", allow_tracer_warnings=True)
    assert "model.pt2" not in bundle.artifacts and {"model.onnx", "model.ts"} <= set(bundle.artifacts)
    failure = bundle.manifest["format_failures"]["pt2"]
    assert failure["reason"].startswith("torch.export cannot capture Guard:")
    assert "guard_model.py" in failure["reason"] and "\n" not in failure["reason"]
    log = bundle.root / failure["log"]["path"]
    assert failure["log"]["path"] == "logs/pt2-export.log" and sha256_file(log) == failure["log"]["sha256"]
    assert "Traceback" in log.read_text()


def test_pt2_named_in_formats_fails_the_export_in_one_line_and_publishes_nothing(tmp_path, capsys):
    model = _guard_model(tmp_path)
    out = tmp_path / "b"
    rc = main(["-q", "export", f"{model}:build", "--input-shape", "1x3x16x16", "--out", str(out),
               "--formats", "onnx,pt2", "--allow-tracer-warnings"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "torch.export cannot capture Guard" in err
    log = tmp_path / "b.export-failure.log"
    assert str(log) in err and "Traceback" in log.read_text()


def test_max_batch_below_the_validation_batch_is_refused(tmp_path, capsys):
    rc = main(["-q", "export", "se_digits", "--out", str(tmp_path / "b"), "--max-batch", "2"])
    assert rc == 2 and "--max-batch 2 is outside 4..4096" in capsys.readouterr().err


# -- a .pt2 is untrusted data ----------------------------------------------------------------------

def _rewrite(src, dst, member_suffix: str, edit) -> None:
    """Copy the zip ``src`` to ``dst`` with the member ending in ``member_suffix`` passed through ``edit``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        hit = False
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith(member_suffix):
                data, hit = edit(data), True
            zout.writestr(item, data)
    assert hit, member_suffix


def _json_edit(fn):
    def edit(data: bytes) -> bytes:
        doc = json.loads(data)
        fn(doc)
        return json.dumps(doc).encode()
    return edit


def _first_node(doc):
    return doc["graph_module"]["graph"]["nodes"][0]


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def _pickled_evil() -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save((_Evil(),), buf)
    return buf.getvalue()


@pytest.mark.parametrize("member, edit, refusal", [
    ("models/model.json", _json_edit(lambda d: _first_node(d).__setitem__("target", "torch.load")),
     "a graph calling 'torch.load'"),
    ("models/model.json", _json_edit(lambda d: d["graph_module"]["graph"]["sym_int_values"].__setitem__(
        "s77", {"as_expr": {"expr_str": "__import__('os').system('true')", "hint": None}})),
     "a shape expression that is not plain sympy"),
    ("models/model.json", _json_edit(lambda d: d.__setitem__("guards_code", ["__import__('os').system('true')"])),
     "a program with guards_code"),
    ("model_weights_config.json", _json_edit(lambda d: next(iter(d["config"].values())).__setitem__("use_pickle", True)),
     "a pickled tensor"),
    ("sample_inputs/model.pt", lambda data: _pickled_evil(), "a pickle that is not plain tensors"),
])
def test_a_pt2_beyond_aten_and_plain_tensors_is_refused_before_torch_loads_it(export_cached, tmp_path, member, edit, refusal):
    good = export_cached("se_digits", (1, 1, 32, 32)).root / "model.pt2"
    check_exported_program(good)  # the writer's own file passes
    bad = tmp_path / "model.pt2"
    _rewrite(good, bad, member, edit)
    with pytest.raises(BundleError, match="edge-se loads only programs of ATen ops and plain tensors") as e:
        check_exported_program(bad)
    assert refusal in str(e.value)


def test_the_runtime_refuses_a_bundle_whose_pt2_carries_a_pickle_even_with_a_matching_manifest(export_cached, tmp_path):
    root = tmp_path / "b"
    shutil.copytree(export_cached("se_digits", (1, 1, 32, 32)).root, root)
    _rewrite(root / "model.pt2", tmp_path / "evil.pt2", "sample_inputs/model.pt", lambda data: _pickled_evil())
    shutil.move(tmp_path / "evil.pt2", root / "model.pt2")
    manifest = json.loads((root / "manifest.json").read_text())  # an attacker re-signs the manifest too
    entry = manifest["artifacts"]["model.pt2"]["files"][0]
    entry["sha256"], entry["bytes"] = sha256_file(root / "model.pt2"), (root / "model.pt2").stat().st_size
    (root / "manifest.json").write_text(json.dumps(manifest))
    Bundle.open(root).verify("model.pt2")
    with pytest.raises(BundleError, match="a pickle that is not plain tensors"):
        Runtime.load(root, backend="pt2")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("edge-se quantize: error: ") and "Traceback" not in err, err
    return lines[0]


def test_quantize_pte_on_a_bundle_without_pt2_exits_2_before_calibrating(tmp_path, small_calib_spec, capsys):
    b = export_bundle("se_digits", (1, 1, 16, 16), tmp_path / "b", formats="onnx", max_batch=4).root
    before = (b / "manifest.json").read_bytes()
    rc = main(["quantize", str(b), "--precision", "int8", "--calib", str(small_calib_spec), "--pte"])
    assert rc == 2
    err = _one_line_error(capsys)
    assert "has no model.pt2" in err and "--formats onnx,pt2" in err
    assert (b / "manifest.json").read_bytes() == before and sorted(p.name for p in b.iterdir()) == ["manifest.json", "model.onnx"]


def test_quantize_pte_without_executorch_exits_3_naming_the_extra(export_cached, small_calib_spec, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("executorch") is not None:
        pytest.skip("executorch is installed here: tests/formats/test_executorch.py runs --pte")
    b = tmp_path / "b"
    shutil.copytree(export_cached("se_digits", (1, 1, 32, 32)).root, b)
    rc = main(["quantize", str(b), "--precision", "int8", "--calib", str(small_calib_spec), "--pte"])
    assert rc == 3
    err = _one_line_error(capsys)
    assert "pip install 'edge-se[executorch]'" in err
    assert not any(p.name.startswith("model.int8") for p in b.iterdir())
