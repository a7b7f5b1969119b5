"""``edge-se export-triton``: Triton model repositories written from real bundles (the export stage's own output)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="needs tritonclient (pip install 'edge-se[serving]')")
from google.protobuf import text_format  # noqa: E402

GOLDEN = Path(__file__).with_name("golden")
LABELS = [f"digit {i}" for i in range(10)]


def _export(out: Path, *extra: str) -> Path:
    assert main(["-q", "export", "se_digits", "--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("triton")
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return _export(root / "se_digits", "--labels", str(labels))


def _config(repo: Path, name: str = "se_digits"):
    return text_format.Parse((repo / name / "config.pbtxt").read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def test_onnx_config_is_triton_schema_and_matches_the_manifest(bundle, tmp_path):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--instances", "2"]) == 0
    cfg = _config(repo)
    assert cfg.platform == "onnxruntime_onnx" and cfg.backend == "onnxruntime"
    assert cfg.max_batch_size == 8
    assert [(t.name, list(t.dims), cfg.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name[
        "data_type"].enum_type.values_by_number[t.data_type].name) for t in cfg.input] == [("input", [1, 32, 32], "TYPE_FP32")]
    assert [(t.name, list(t.dims)) for t in cfg.output] == [("logits", [10])]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert cfg.instance_group[0].count == 2 and cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert cfg.model_warmup[0].batch_size == 1 and cfg.model_warmup[0].inputs["input"].zero_data
    entry = _manifest(bundle)["artifacts"]["model.onnx"]["files"][0]
    assert _sha(repo / "se_digits" / "1" / "model.onnx") == entry["sha256"]


def test_labels_become_triton_label_filename(bundle, tmp_path):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo)]) == 0
    cfg = _config(repo)
    assert cfg.output[0].label_filename == "labels.txt"
    assert (repo / "se_digits" / "labels.txt").read_text(encoding="utf-8").splitlines() == LABELS


def test_onnx_config_equals_the_golden_file(bundle, tmp_path):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--max-batch", "16",
                 "--max-queue-delay-us", "500", "--warmup", "random"]) == 0
    assert (repo / "se_digits" / "config.pbtxt").read_text(encoding="utf-8") == \
        (GOLDEN / "se_digits.onnxruntime.pbtxt").read_text(encoding="utf-8")


def test_torchscript_gets_libtorch_names_and_file(bundle, tmp_path):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--artifact", "model.ts", "--kind", "gpu"]) == 0
    cfg = _config(repo)
    assert cfg.platform == "pytorch_libtorch" and cfg.default_model_filename == "model.pt"
    assert [t.name for t in cfg.input] == ["INPUT__0"] and [t.name for t in cfg.output] == ["OUTPUT__0"]
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert _sha(repo / "se_digits" / "1" / "model.pt") == _manifest(bundle)["artifacts"]["model.ts"]["files"][0]["sha256"]


def test_pt2_batch_range_bounds_max_batch(bundle, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--artifact", "model.pt2", "--serve", "python",
                 "--runtime-backend", "pt2"]) == 0
    assert _config(repo).max_batch_size == _manifest(bundle)["artifacts"]["model.pt2"]["batch_range"][1]
    assert main(["-q", "export-triton", str(bundle), "--out", str(tmp_path / "r2"), "--artifact", "model.pt2",
                 "--serve", "python", "--max-batch", "9"]) == 2
    assert "above artifact model.pt2's batch range (1..8)" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_python_serving_copy_runs_like_the_bundle(bundle, tmp_path):
    from edge_se.runtime import Runtime

    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--serve", "python", "--name", "se_py"]) == 0
    cfg = _config(repo, "se_py")
    assert cfg.backend == "python" and cfg.parameters["edge_se_artifact"].string_value == "model.onnx"
    version = repo / "se_py" / "1"
    assert (version / "model.py").read_text(encoding="utf-8") == \
        (Path(__file__).parents[2] / "edge_se" / "serving" / "triton_python_model.py").read_text(encoding="utf-8")
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    copied = Runtime.load(version / "bundle", backend="onnxruntime", artifact="model.onnx")
    np.testing.assert_array_equal(copied.predict(x), Runtime.load(bundle, backend="onnxruntime").predict(x))
    assert copied.labels == LABELS


def test_static_batch_bundle_gets_max_batch_size_zero(tmp_path, capsys):
    static = _export(tmp_path / "static", "--static-batch", "--formats", "onnx")
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(static), "--out", str(repo)]) == 0
    cfg = _config(repo)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [1, 1, 32, 32]
    assert not cfg.HasField("dynamic_batching")
    assert main(["-q", "export-triton", str(static), "--out", str(tmp_path / "r2"), "--max-batch", "4"]) == 2
    assert "static batch" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--artifact", "model.int8.trt.onnx"], "has no artifact 'model.int8.trt.onnx'"),
    (["--artifact", "model.pt2"], "use --serve python"),
    (["--name", "../evil"], "is not a valid Triton name"),
    (["--instances", "0"], "--instances must be at least 1"),
    (["--serve", "python", "--runtime-backend", "cuda"], "--runtime-backend 'cuda': expected one of"),
    (["--serve", "python", "--kind", "gpu"], "--kind gpu with --serve python"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(bundle, tmp_path, capsys, args, message):
    repo = tmp_path / "repo"
    assert main(["export-triton", str(bundle), "--out", str(repo), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not repo.exists() and list(tmp_path.iterdir()) == []


def test_foreign_folder_is_never_replaced_even_with_force(bundle, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["export-triton", str(bundle), "--out", str(out), "--force"]) == 2
    assert "edge-se did not write" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_edge_se_repository_is_replaced_only_with_force(bundle, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--name", "first"]) == 0
    assert main(["export-triton", str(bundle), "--out", str(repo), "--name", "second"]) == 2
    assert "pass --force" in capsys.readouterr().err and (repo / "first").is_dir()
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--name", "second", "--force"]) == 0
    assert sorted(p.name for p in repo.iterdir()) == [".edge-se-serving.json", "second"]
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no staging left beside it


def test_tampered_artifact_is_refused_and_nothing_is_published(bundle, tmp_path, capsys):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert main(["export-triton", str(copy), "--out", str(tmp_path / "repo")]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["outputs"][0].update(name="logits out"), "is not a valid Triton name"),
    (lambda a: a["inputs"][0].update(shape=["batch", 1, "height", "width"]), "the batch as the only variable dimension"),
    (lambda a: a["inputs"][0].update(dtype="complex64"), "has no Triton type"),
])
def test_manifest_specs_triton_cannot_take_are_refused(bundle, tmp_path, capsys, edit, message):
    """A manifest is untrusted input: names, dims and dtypes Triton cannot take are one-line errors."""
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = _manifest(copy)
    edit(manifest["artifacts"]["model.onnx"])
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["export-triton", str(copy), "--out", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "repo").exists()


def test_ensemble_wires_preprocessing_to_the_model_and_parses(bundle, tmp_path):
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--ensemble", "--max-batch", "4"]) == 0
    model, pre, ens = _config(repo), _config(repo, "se_digits_preprocess"), _config(repo, "se_digits_ensemble")
    assert pre.backend == "python" and ens.platform == "ensemble"
    assert model.max_batch_size == pre.max_batch_size == ens.max_batch_size == 4
    # the preprocessing step's output is exactly the model's input; the ensemble's outputs are the model's
    assert [(t.name, list(t.dims), t.data_type) for t in pre.output] == \
        [(t.name, list(t.dims), t.data_type) for t in model.input]
    assert [(t.name, list(t.dims)) for t in ens.output] == [(t.name, list(t.dims)) for t in model.output]
    first, second = ens.ensemble_scheduling.step
    assert (first.model_name, second.model_name) == ("se_digits_preprocess", "se_digits")
    assert first.output_map["input"] == second.input_map["input"]
    assert set(second.output_map) == {t.name for t in model.output}
    assert (repo / "se_digits_ensemble" / "1").is_dir() and not any((repo / "se_digits_ensemble" / "1").iterdir())
    assert (repo / "se_digits_preprocess" / "1" / "model.py").is_file()
    assert json.loads((repo / "se_digits_preprocess" / "1" / "bundle" / "manifest.json").read_text())[
        "preprocessing"] == _manifest(bundle)["preprocessing"]


def test_ensemble_of_a_static_batch_bundle_is_refused(tmp_path, capsys):
    b = _export(tmp_path / "static", "--input-shape", "2x1x32x32", "--static-batch")
    assert main(["export-triton", str(b), "--out", str(tmp_path / "repo"), "--ensemble"]) == 2
    assert "static batch" in capsys.readouterr().err and not (tmp_path / "repo").exists()
