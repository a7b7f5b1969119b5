"""`edge-se predict` and `edge-se bench`: results, one-line errors, exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from edge_se.preprocess import PreprocessSpec, preprocess_batch
from edge_se.runtime import tensorrt_available
from runtime_helpers import LABELS, run_cli, torch_logits


@pytest.fixture(scope="session")
def pipeline_bundle(tmp_path_factory):
    """se_resnet18 (seeded random weights) at 1x3x64x64, made by the core export pipeline."""
    export = pytest.importorskip("edge_se.export.pipeline", reason="the export pipeline is not in this checkout")
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pipeline")
    labels = root / "imagenet_ids.txt"
    labels.write_text("\n".join(f"n{i:08d}" for i in range(1000)) + "\n", encoding="utf-8")
    return export.export_bundle("se_resnet18", (1, 3, 64, 64), root / "se18", labels=labels).root


def test_predict_matches_pytorch_top1_on_sklearn_sample_images(pipeline_bundle, sample_images):
    from edge_se.bundle import Bundle
    from edge_se.models.loading import resolve_model

    out = run_cli("predict", str(pipeline_bundle), *map(str, sample_images), "--top-k", "3", "--json")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["results"]
    spec = PreprocessSpec.from_dict(Bundle.open(pipeline_bundle).manifest["preprocessing"])
    reference = torch_logits(resolve_model("se_resnet18", seed=0).module, preprocess_batch(sample_images, spec))
    assert [r["top_k"][0]["index"] for r in results] == [int(i) for i in reference.argmax(1)]
    assert [r["top_k"][0]["label"] for r in results] == [f"n{int(i):08d}" for i in reference.argmax(1)]


def test_predict_on_a_folder_prints_labels_and_scores(bundle_dir, sample_images):
    out = run_cli("predict", str(bundle_dir), str(sample_images[0].parent), "--top-k", "2")
    assert out.returncode == 0, out.stderr
    assert "backend onnxruntime (CPUExecutionProvider)" in out.stdout
    assert "china.jpg" in out.stdout and "flower.jpg" in out.stdout
    assert sum(label in out.stdout for label in LABELS) >= 1


def test_predict_json_reports_the_backend_and_top_k(bundle_dir, sample_images):
    out = run_cli("predict", str(bundle_dir), str(sample_images[0]), "--top-k", "4", "--json", "--threads", "1")
    data = json.loads(out.stdout)
    assert data["runtime"]["backend"] == "onnxruntime" and data["runtime"]["intra_op_threads"] == 1
    assert len(data["results"][0]["top_k"]) == 4
    assert data["results"][0]["top_k"][0]["label"] in LABELS


def test_predict_on_a_missing_bundle_exits_2_with_one_line(tmp_path, sample_images):
    out = run_cli("predict", str(tmp_path / "missing"), str(sample_images[0]))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "does not exist" in out.stderr


def test_predict_refuses_a_modified_artifact_unless_no_verify(bundle_copy, sample_images):
    from edge_se.bundle import Bundle

    bundle = Bundle.open(bundle_copy)
    bundle.artifacts["model.onnx"]["files"][0]["sha256"] = "0" * 64  # the file no longer matches
    bundle.save()
    refused = run_cli("predict", str(bundle_copy), str(sample_images[0]))
    assert refused.returncode == 1 and "sha256 mismatch" in refused.stderr and "model.onnx" in refused.stderr
    assert run_cli("predict", str(bundle_copy), str(sample_images[0]), "--no-verify").returncode == 0


def test_predict_on_an_undecodable_image_exits_2(bundle_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    out = run_cli("predict", str(bundle_dir), str(bad))
    assert out.returncode == 2 and "cannot decode image" in out.stderr


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT and a GPU are present here")
def test_predict_with_tensorrt_missing_exits_3_naming_the_extra(bundle_dir, sample_images):
    out = run_cli("predict", str(bundle_dir), str(sample_images[0]), "--backend", "tensorrt")
    assert out.returncode == 3
    assert "edge-se[tensorrt]" in out.stderr or "NVIDIA GPU" in out.stderr


def test_predict_runs_the_chosen_precision_artifact(bundle_copy, sample_images):
    from edge_se.bundle import Bundle

    bundle = Bundle.open(bundle_copy)
    shutil.copy(bundle_copy / "model.onnx", bundle_copy / "model.fp16.onnx")  # same graph, recorded as fp16
    bundle.add_artifact("model.fp16.onnx", stage="quantize", format="onnx", precision="fp16", backend="onnxruntime")
    bundle.save()
    out = run_cli("predict", str(bundle_copy), str(sample_images[0]), "--precision", "fp16", "--json")
    assert json.loads(out.stdout)["runtime"]["artifact"] == "model.fp16.onnx"


def test_bench_prints_percentiles_throughput_and_providers(bundle_dir):
    out = run_cli("bench", str(bundle_dir), "--batch", "2", "--threads", "1", "--duration", "0.5")
    assert out.returncode == 0, out.stderr
    for text in ("p50", "p90", "p99", "throughput", "providers   CPUExecutionProvider", "batch       2"):
        assert text in out.stdout


def test_bench_json_counts_calls_from_every_thread(bundle_dir):
    out = run_cli("bench", str(bundle_dir), "--duration", "0.5", "--concurrency", "2", "--threads", "1", "--json")
    data = json.loads(out.stdout)
    assert data["concurrency"] == 2 and data["calls"] >= 2
    assert data["p50_ms"] <= data["p90_ms"] <= data["p99_ms"]
    assert data["runtime"]["providers"] == ["CPUExecutionProvider"]


def test_bench_refuses_a_non_positive_batch(bundle_dir):
    out = run_cli("bench", str(bundle_dir), "--batch", "0")
    assert out.returncode == 2 and "--batch" in out.stderr


def test_predict_on_a_single_onnx_file_uses_the_given_spec_and_labels(bundle_dir, sample_images, tmp_path):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(manifest["preprocessing"]))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"other_{i}" for i in range(10)))
    single = run_cli("predict", str(bundle_dir / "model.onnx"), str(sample_images[0]), "--json",
                     "--preprocessing", str(spec), "--labels", str(labels))
    from_bundle = run_cli("predict", str(bundle_dir), str(sample_images[0]), "--json")
    top_single = json.loads(single.stdout)["results"][0]["top_k"][0]
    top_bundle = json.loads(from_bundle.stdout)["results"][0]["top_k"][0]
    assert top_single["index"] == top_bundle["index"] and top_single["label"] == f"other_{top_single['index']}"
