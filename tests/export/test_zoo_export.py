"""Every zoo model exports to simplified ONNX, torch.export .pt2 and TorchScript, each validated against eager."""

from __future__ import annotations

import json

import pytest

from edge_se.models.registry import list_models

from zoo_helpers import HEAVY, zoo_shape


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_zoo_model_exports_and_validates_at_two_batch_sizes(name, export_cached):
    bundle = export_cached(name, zoo_shape(name))
    checks = [c for c in bundle.manifest["checks"] if c["name"].startswith("numerics/")]
    batches = {c["batch"] for c in checks if c["artifact"] == "model.onnx"}
    assert batches == {1, 4}
    assert {c["artifact"] for c in checks} == {"model.onnx", "model.ts", "model.pt2"}
    assert {c["batch"] for c in checks if c["artifact"] == "model.pt2"} == {1, 4}
    assert {c["backend"] for c in checks if c["artifact"] == "model.pt2"} == {"pt2"}
    assert bundle.artifact("model.pt2")["batch_range"] == [1, 8]
    assert all(c["passed"] for c in checks), [c["reason"] for c in checks if not c["passed"]]
    real = [c for c in checks if c["name"].startswith("numerics/real")]
    assert real and all("sample images" in c["inputs"] for c in real)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_deep_se_resnets_export_and_validate(name, tmp_path):
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    bundle = export_bundle(name, (1, 3, 64, 64), tmp_path / name)  # not cached: ~0.8 GB, used once
    assert {"model.onnx", "model.pt2", "model.ts"} <= set(bundle.artifacts)
    assert all(c["passed"] for c in bundle.manifest["checks"])


def test_manifest_lists_hashes_io_opset_tools_and_preprocessing(export_cached):
    bundle = export_cached("se_resnet18", (1, 3, 64, 64))
    m = json.loads((bundle.root / "manifest.json").read_text())
    onnx_rec = m["artifacts"]["model.onnx"]
    assert onnx_rec["opset"] == 17 and onnx_rec["precision"] == "fp32" and onnx_rec["stage"] == "export"
    assert onnx_rec["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    assert onnx_rec["outputs"][0]["name"] == "logits" and onnx_rec["outputs"][0]["dtype"] == "float32"
    assert len(onnx_rec["files"][0]["sha256"]) == 64
    assert onnx_rec["simplifier"]["used"] is True
    assert {"torch", "onnx", "onnxruntime", "onnxslim"} <= set(m["tools"])
    assert m["preprocessing"]["crop"] == [64, 64] and m["preprocessing"]["color"] == "RGB"
    assert m["model"]["weights"].startswith("random init")
    assert set(m["timings"]) >= {"trace", "export", "simplify", "validate"}
    assert sorted(p.name for p in bundle.root.iterdir()) == ["manifest.json", "model.onnx", "model.pt2", "model.ts"]
