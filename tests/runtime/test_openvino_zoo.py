"""The OpenVINO rows on the zoo (small shapes), judged against the PyTorch reference with the
precision's tolerance: FP32, BF16 and INT8 (each of the two files the quantize stage writes) on
every zoo model but the deep SE-ResNets (HEAVY)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_se.models.registry import list_models

from zoo_helpers import HEAVY, zoo_shape

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'edge-se[openvino]')")

ROOT = Path(__file__).resolve().parents[2]
MODELS = [n for n in list_models() if n not in HEAVY]
SAMPLES = 32


def _reference(bundle, x: np.ndarray) -> np.ndarray:
    import torch

    from edge_se.reference.rebuild import reference_module

    with torch.inference_mode():
        return reference_module(bundle)(torch.from_numpy(x)).numpy()


def _inputs(bundle) -> np.ndarray:
    from edge_se.preprocess import PreprocessSpec
    from edge_se.reference.inputs import sample_images

    return sample_images(SAMPLES, PreprocessSpec.from_dict(bundle.section("preprocessing")), seed=7)


def _judge(bundle, precision: str, artifact: str, x: np.ndarray, ref: np.ndarray) -> dict:
    from edge_se.runtime import Runtime
    from edge_se.reference.numerics import compare_outputs

    rt = Runtime.load(bundle.root, "openvino", artifact=artifact, precision="bf16" if precision == "bf16" else None)
    assert rt.describe()["precision"] == precision
    return compare_outputs([ref], [rt.predict(x)], precision)


@pytest.mark.parametrize("name", MODELS)
def test_fp32_and_bf16_on_openvino_pass_their_tolerances(name, export_cached):
    from edge_se.runtime.backends.openvino import bf16_refusal

    bundle = export_cached(name, zoo_shape(name))
    x = _inputs(bundle)
    ref = _reference(bundle, x)
    fp32 = _judge(bundle, "fp32", "model.onnx", x, ref)
    assert fp32["passed"], fp32
    if bf16_refusal(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")) is None:
        bf16 = _judge(bundle, "bf16", "model.onnx", x, ref)
        assert bf16["passed"], bf16
        assert bf16["outputs"][0]["max_abs"] > fp32["outputs"][0]["max_abs"]  # it did run in BF16


@pytest.fixture
def int8_bundle(export_cached, tmp_path):
    """``int8_bundle(name)``: a copy of the exported bundle quantized by the real stage (policy all,
    nearest weights: the quickest full-INT8 run) on 32 crops of the sample images. The copy is
    hard-linked (the stage replaces files, never writes into them) and goes with the test's tmp_path."""
    import os

    from edge_se.bundle import Bundle
    from edge_se.calibration.build import calibration_from
    from edge_se.calibration.spec import load_spec
    from edge_se.preprocess import PreprocessSpec
    from edge_se.quantize.stage import quantize_int8

    def make(name: str):
        src = export_cached(name, zoo_shape(name))
        dst = tmp_path / name
        shutil.copytree(src.root, dst, copy_function=os.link)
        spec = load_spec(ROOT / "calibration" / "sample-images.toml").with_count(SAMPLES)
        spec = dataclasses.replace(spec, preprocessing=PreprocessSpec.from_dict(src.section("preprocessing")))
        calib = calibration_from(spec, tmp_path / f"calib-{name}")
        bundle = quantize_int8(Bundle.open(dst), calib, policy="all", method="minmax", weight_rounding="nearest")
        assert not (src.root / "model.int8.cpu.onnx").exists()
        assert "model.int8.cpu.onnx" not in Bundle.open(src.root).artifacts  # the linked manifest was replaced
        return bundle

    return make


@pytest.mark.parametrize("name", MODELS)
def test_each_int8_file_on_openvino_passes_the_int8_tolerance(name, int8_bundle):
    from edge_se.runtime import Runtime

    bundle = int8_bundle(name)
    x = _inputs(bundle)
    ref = _reference(bundle, x)
    for artifact in ("model.int8.cpu.onnx", "model.int8.trt.onnx"):
        result = _judge(bundle, "int8", artifact, x, ref)
        assert result["passed"], (artifact, result)
    # the TensorRT-ready file runs per static batch (a dynamic batch breaks SimAM: 9 dB), the CPU file dynamic
    assert Runtime.load(bundle.root, "openvino", artifact="model.int8.trt.onnx").describe()["static_batches"] == [1]
    assert Runtime.load(bundle.root, "openvino", artifact="model.int8.cpu.onnx").describe()["static_batches"] is None
    # without a saved choice each backend runs the file measured fastest on it (the CPU file)
    assert Runtime.load(bundle.root, "openvino", precision="int8").describe()["artifact"] == "model.int8.cpu.onnx"
    assert Runtime.load(bundle.root, "onnxruntime", precision="int8").describe()["artifact"] == "model.int8.cpu.onnx"
