"""On an NVIDIA GPU with TensorRT: build, run and compare with the FP32 ONNX on ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def _gpu_tensorrt():
    from edge_se.runtime.backends.probe import installed

    if not installed("tensorrt"):
        return "needs TensorRT: pip install 'edge-se[tensorrt]'"
    from edge_se.runtime.backends.cuda_device import device_info

    if device_info() is None:
        return "needs an NVIDIA GPU (none found)"
    return None


skip_reason = _gpu_tensorrt()
requires_gpu = pytest.mark.skipif(skip_reason is not None, reason=skip_reason or "")


@requires_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime_within_the_precision_tolerance(tiny_bundle, tmp_path, precision):
    import onnxruntime as ort

    from edge_se.tensorrt._import import import_tensorrt
    from edge_se.tensorrt.build import build_bundle_engine
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.runtime.backends.tensorrt_runner import TensorRTRunner
    from edge_se.reference.numerics import compare_outputs

    v = import_tensorrt().version
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nspec = "tiny"\ninput_shape = [2, 3, 32, 32]\nbatch = [1, 2, 4]\n[target]\nname = "desktop"\n'
                      f'tensorrt = ">={v[0]}.{v[1]}"\n[precision]\nmode = "{precision}"\n')
    record = build_bundle_engine(tiny_bundle.root, load_recipe(recipe))
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ref = ort.InferenceSession(str(tiny_bundle.root / "model.onnx")).run(None, {"input": x})
    with TensorRTRunner(tiny_bundle.root / record["path"]) as runner:
        got = runner.infer({"input": x})
    assert compare_outputs(ref, [got["logits"]], precision)["passed"]


@requires_gpu
def test_input_outside_the_profile_is_refused_with_the_range(tiny_bundle, tmp_path):
    from edge_se.errors import InputError
    from edge_se.tensorrt._import import import_tensorrt
    from edge_se.tensorrt.build import build_bundle_engine
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.runtime.backends.tensorrt_runner import TensorRTRunner

    v = import_tensorrt().version
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nspec = "tiny"\ninput_shape = [2, 3, 32, 32]\nbatch = [1, 2, 4]\n[target]\nname = "desktop"\n'
                      f'tensorrt = ">={v[0]}.{v[1]}"\n[precision]\nmode = "fp32"\n')
    record = build_bundle_engine(tiny_bundle.root, load_recipe(recipe))
    with TensorRTRunner(tiny_bundle.root / record["path"]) as runner, pytest.raises(InputError, match="outside the engine's profile"):
        runner.infer({"input": np.zeros((8, 3, 32, 32), np.float32)})
