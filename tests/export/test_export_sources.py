"""torchvision, timm and user-file models export end to end (no weights downloaded)."""

from __future__ import annotations

import textwrap

import pytest


def test_timm_seresnext26d_exports_and_validates(export_cached):
    pytest.importorskip("timm")
    bundle = export_cached("timm:seresnext26d_32x4d", (1, 3, 64, 64))
    assert bundle.manifest["model"]["source"] == "timm"
    assert all(c["passed"] for c in bundle.manifest["checks"])


def test_torchvision_efficientnet_b0_exports_and_validates(export_cached):
    bundle = export_cached("torchvision:efficientnet_b0", (1, 3, 64, 64))
    assert bundle.manifest["model"]["source"] == "torchvision"
    assert "random init" in bundle.manifest["model"]["weights"]
    assert all(c["passed"] for c in bundle.manifest["checks"])


def test_user_file_with_checkpoint_exports_those_weights(tmp_path):
    import numpy as np
    import onnxruntime as ort
    import torch

    from edge_se.export.pipeline import export_bundle

    src = tmp_path / "my_net.py"
    src.write_text(textwrap.dedent(
        """
        import torch.nn as nn
        from edge_se.attention import create_attn

        def build():
            return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), create_attn("se", 16, rd_ratio=0.25),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
        """
    ))
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_net_for_ckpt", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(123)
    trained = mod.build().eval()
    ckpt = tmp_path / "best.pt"
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, ckpt)

    bundle = export_bundle(f"{src}:build", (1, 3, 48, 48), tmp_path / "bundle", checkpoint=ckpt)
    assert bundle.manifest["model"]["checkpoint"]["sha256"]
    assert "checkpoint" in bundle.manifest["model"]["weights"]
    x = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    sess = ort.InferenceSession(str(bundle.root / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = trained(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], want, atol=1e-4)
