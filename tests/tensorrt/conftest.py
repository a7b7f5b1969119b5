"""Fixtures for the TensorRT tests: small ONNX models and bundles holding them.

Markers: ``trt_rtx`` tests need TensorRT for RTX (``tensorrt-rtx-cu12``; run by
scripts/ci_trt_rtx.sh in their own environment); ``gpu`` tests need an NVIDIA GPU and TensorRT.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "export").glob("*.toml"))


def pytest_configure(config):
    config.addinivalue_line("markers", "trt_rtx: builds real engines with TensorRT for RTX (scripts/ci_trt_rtx.sh)")


def export_tiny(path: Path, size: int = 32, dynamic: bool = True) -> Path:
    """A small SE-style CNN (conv, squeeze-excite gate, head) as ONNX with input 'input'."""
    torch = pytest.importorskip("torch", reason="making test ONNX models needs torch")
    nn = torch.nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc1, self.fc2, self.head = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1), nn.Linear(8, 5)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
            return self.head((y * gate).mean((2, 3)))

    torch.manual_seed(0)
    # dynamic batch and resolution: the model pools globally, so any recipe shape fits
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter's notice
        torch.onnx.export(Tiny().eval(), (torch.randn(1, 3, size, size),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def make_bundle(root: Path, files: dict[str, Path], input_shape=(1, 3, 32, 32), recorded=("batch", 3, "height", "width")):
    """A bundle at ``root`` whose artifacts are copies of ``files`` (artifact name -> source)."""
    from edge_se.bundle import Bundle

    root.mkdir(parents=True, exist_ok=True)
    preprocessing = {"crop": list(input_shape[2:]), "layout": "NCHW"}
    if input_shape[1] == 1:  # what export writes for a one-channel model
        preprocessing.update(color="GRAY", mean=[0.5], std=[0.5])
    bundle = Bundle.new(root, model={"spec": "tiny", "input_shape": list(input_shape), "dynamic_batch": True},
                        preprocessing=preprocessing, tools={})
    for name, src in files.items():
        shutil.copyfile(src, root / name)
        precision = "int8" if "int8" in name else "fp16" if "fp16" in name else "fp32"
        bundle.add_artifact(name, stage="export", format="onnx", precision=precision, backend="onnxruntime",
                            inputs=[{"name": "input", "shape": list(recorded), "dtype": "float32"}],
                            outputs=[{"name": "logits", "shape": ["batch", 5], "dtype": "float32"}])
    bundle.save()
    return bundle


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture
def tiny_bundle(tmp_path, tiny_onnx):
    return make_bundle(tmp_path / "bundle", {"model.onnx": tiny_onnx})


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
