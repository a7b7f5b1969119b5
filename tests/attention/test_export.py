"""Every module traces with torch.jit.trace and exports to ONNX (TorchScript-based exporter,
opset 17) with dynamic batch, height and width; ONNX Runtime matches PyTorch within 1e-4."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge_se.attention import ATTENTION_TYPES, SelectiveKernel, create_attn

CHANNELS = 32
EXPORT_SHAPE = (2, CHANNELS, 12, 12)
# two batch sizes x two resolutions, none equal to the export shape
RUN_SHAPES = [(1, CHANNELS, 8, 8), (3, CHANNELS, 8, 8), (1, CHANNELS, 16, 14), (3, CHANNELS, 16, 14)]
TOL = 1e-4


def _module(name: str, randomized) -> torch.nn.Module:
    kwargs = {"rd_ratio": 1 / 4} if name in ("se", "cbam", "bam") else {}
    return randomized(create_attn(name, CHANNELS, **kwargs))


def _export(m: torch.nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.onnx.export(
            m, (torch.randn(*EXPORT_SHAPE),), str(path), dynamo=False, opset_version=17,
            input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch", 2: "height", 3: "width"}},
        )


@pytest.mark.parametrize("name", ATTENTION_TYPES)
def test_traced_module_runs_at_other_batch_and_resolution(name, randomized, make_input):
    m = _module(name, randomized)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        traced = torch.jit.trace(m, torch.randn(*EXPORT_SHAPE))
    with torch.no_grad():
        for seed, shape in enumerate(RUN_SHAPES):
            x = make_input(*shape, seed=seed)
            torch.testing.assert_close(traced(x), m(x), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ATTENTION_TYPES)
def test_onnx_export_runs_on_ort_with_dynamic_batch_and_resolution(name, randomized, make_input, tmp_path):
    m = _module(name, randomized)
    path = tmp_path / f"{name}.onnx"
    _export(m, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", CHANNELS, "height", "width"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for seed, shape in enumerate(RUN_SHAPES):
            x = make_input(*shape, seed=seed)
            (got,) = session.run(None, {"x": x.numpy()})
            assert got.shape == shape
            np.testing.assert_allclose(got, m(x).numpy(), atol=TOL, rtol=0)


def test_strided_sk_exports_with_dynamic_resolution(randomized, make_input, tmp_path):
    m = randomized(SelectiveKernel(CHANNELS, 48, stride=2, dilated=True))
    path = tmp_path / "sk_s2.onnx"
    _export(m, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for shape in [(1, CHANNELS, 8, 8), (3, CHANNELS, 16, 14)]:
            x = make_input(*shape)
            (got,) = session.run(None, {"x": x.numpy()})
            np.testing.assert_allclose(got, m(x).numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ATTENTION_TYPES)
def test_dynamo_onnx_export_also_runs_with_dynamic_batch_and_resolution(name, randomized, make_input, tmp_path):
    from torch.export import Dim

    m = _module(name, randomized)
    path = tmp_path / f"{name}.dynamo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m, (torch.randn(*EXPORT_SHAPE),), str(path), dynamo=True, opset_version=18, input_names=["x"],
            dynamic_shapes={"x": {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}}, verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for seed, shape in enumerate([(1, CHANNELS, 8, 8), (3, CHANNELS, 16, 14)]):
            x = make_input(*shape, seed=seed)
            (got,) = session.run(None, {"x": x.numpy()})
            np.testing.assert_allclose(got, m(x).numpy(), atol=TOL, rtol=0)
