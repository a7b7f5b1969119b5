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


def _classic_plan(tmp_path, precision: dict):
    """The plan for the tiny model with the installed TensorRT, or a skip on 11.x (no calibrators
    or layer precisions there)."""
    from edge_se.tensorrt._import import import_tensorrt
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import parse_recipe

    trt = import_tensorrt()
    if trt.version >= (11, 0):
        pytest.skip(f"needs TensorRT 8.5-10.x for the classic path (installed: {trt.version_text})")
    v = trt.version
    data = {"model": {"spec": "tiny", "input_shape": [2, 3, 32, 32], "batch": [1, 2, 4]},
            "target": {"name": "desktop", "tensorrt": f">={v[0]}.{v[1]},<11"}, "precision": precision,
            "calibration": {"spec": "c.toml"}}
    return trt, plan_build(parse_recipe(data, "t.toml", tmp_path), v, trt.flavor, "input")


@requires_gpu
@pytest.mark.parametrize("algorithm", ["entropy2", "minmax"])
def test_the_calibrator_path_calibrates_writes_its_cache_and_then_builds_from_the_cache_alone(tiny_onnx, tmp_path, algorithm):
    from edge_se.tensorrt.calibrator import ALGORITHMS, cache_header
    from edge_se.tensorrt.engine import build_serialized
    from edge_se.tensorrt.versions import parse_version, version_number

    trt, plan = _classic_plan(tmp_path, {"mode": "int8", "int8": "calibrator", "calibrator": algorithm})
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(plan.calibration_shape).astype(np.float32) for _ in range(4)]
    cache = tmp_path / "c.cache"
    data, report = build_serialized(trt.module, plan, tiny_onnx, calibration_batches=iter(batches),
                                    calibration_cache_out=cache)
    assert len(data) > 1000 and report.calibration_batches == 4
    assert cache_header(cache.read_bytes()) == (version_number(parse_version(trt.version_text)[:3]),
                                                ALGORITHMS[algorithm][1])
    again, second = build_serialized(trt.module, plan, tiny_onnx, calibration_cache_in=cache.read_bytes(),
                                     calibration_cache_out=tmp_path / "c2.cache")
    assert len(again) > 1000 and second.calibration_batches == 0  # TensorRT read the cache, asked for no data


@requires_gpu
def test_kept_float_layers_get_their_precision_and_output_types(tiny_onnx, tmp_path):
    from edge_se.quantize.patterns import find_attention_gates, gate_node_names
    from edge_se.tensorrt.engine import build_serialized

    trt, plan = _classic_plan(tmp_path, {"mode": "fp16", "policy": "keep-gates"})
    assert plan.policy_mode == "layer-constraints"
    nodes = gate_node_names(find_attention_gates(tiny_onnx))
    data, report = build_serialized(trt.module, plan, tiny_onnx, float_layers=nodes)
    assert len(data) > 1000 and report.float_layers_requested == len(set(nodes)) and report.float_layers_applied > 0
