"""Fixtures: small real bundles made with torch.onnx.export (no downloads).

A tiny SE classifier (conv -> squeeze-excite gate -> pool -> linear, 10 classes, 3x64x64) is
exported to a dynamic-batch ONNX, a static-batch (batch 2) ONNX and TorchScript, and written as
edge-se bundles with a labels file.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_se.bundle import Bundle
from edge_se.preprocess import PreprocessSpec

from runtime_helpers import INPUT_SHAPE, LABELS, N_CLASSES


def _tiny_se_net():
    import torch
    from torch import nn

    class SE(nn.Module):
        def __init__(self, c: int, r: int = 4):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(), SE(16),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), SE(32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, N_CLASSES),
    )
    with torch.no_grad():  # non-trivial BN statistics, so eval mode matters
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


def _export_onnx(net, path: Path, batch: int, dynamic: bool) -> None:
    import torch

    x = torch.zeros(batch, *INPUT_SHAPE[1:])
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)


def _io(batch: int | str) -> dict:
    return {
        "inputs": [{"name": "input", "shape": [batch, *INPUT_SHAPE[1:]], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [batch, N_CLASSES], "dtype": "float32"}],
    }


def make_bundle(root: Path, net, *, dynamic: bool = True, static_batch: int = 2, torchscript: bool = True) -> Bundle:
    """Write a bundle with model.onnx (+ model.ts) and labels.txt under ``root``."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec.for_input_shape(INPUT_SHAPE)
    bundle = Bundle.new(
        root,
        model={"spec": "tiny_se", "source": "tests", "input_shape": list(INPUT_SHAPE), "dynamic_batch": dynamic},
        preprocessing=spec.to_dict(),
    )
    batch = "batch" if dynamic else static_batch
    _export_onnx(net, root / "model.onnx", 1 if dynamic else static_batch, dynamic)
    bundle.add_artifact("model.onnx", stage="export", format="onnx", precision="fp32", backend="onnxruntime",
                        opset=17, **_io(batch))
    if torchscript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(net, torch.zeros(INPUT_SHAPE)).save(str(root / "model.ts"))
        bundle.add_artifact("model.ts", stage="export", format="torchscript", precision="fp32",
                            backend="torchscript", **_io(batch))
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    bundle.manifest["labels"] = bundle.file_entry("labels.txt")
    bundle.save()
    return bundle


@pytest.fixture(scope="session")
def tiny_net():
    return _tiny_se_net()


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, tiny_net) -> Path:
    """A dynamic-batch bundle (ONNX + TorchScript + labels). Treat as read-only."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "tiny", tiny_net).root


@pytest.fixture(scope="session")
def static_bundle_dir(tmp_path_factory, tiny_net) -> Path:
    """A static batch-2 bundle (ONNX only)."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "tiny_static", tiny_net, dynamic=False,
                       torchscript=False).root


@pytest.fixture
def bundle_copy(tmp_path, bundle_dir) -> Path:
    """A private copy of the dynamic bundle, for tests that damage it."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "copy"))


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    """scikit-learn's two sample photographs (china.jpg, flower.jpg), shipped with the package."""
    from sklearn.datasets import load_sample_images

    return [Path(p) for p in load_sample_images().filenames]


@pytest.fixture
def batch4() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, *INPUT_SHAPE[1:]), dtype=np.float32)

