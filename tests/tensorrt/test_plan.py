"""Version dispatch: which build path each recipe takes with each TensorRT version."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_se.tensorrt.plan import plan_build
from edge_se.tensorrt.recipe import RecipeError, load_recipe, parse_recipe
from edge_se.tensorrt.versions import era

MODEL = {"spec": "se_resnet18", "input_shape": [4, 3, 224, 224], "batch": [1, 4, 8]}


def recipe(precision: dict, tensorrt: str = ">=8.5", **extra):
    data = {"model": dict(MODEL), "target": {"name": "desktop", "tensorrt": tensorrt}, "precision": precision,
            "calibration": {"spec": "calib.toml", "batch": 2}, **extra}
    return parse_recipe(data, "test.toml", Path("."))


@pytest.mark.parametrize("version,expected", [((8, 5, 2), "classic"), ((8, 6), "classic"), ((10, 3), "classic"),
                                              ((10, 16, 1), "classic"), ((11, 0), "strongly-typed"), ((11, 4), "strongly-typed")])
def test_era_of_each_tensorrt_version(version, expected):
    assert era(version) == expected


def test_tensorrt_for_rtx_is_always_strongly_typed():
    assert era((1, 7, 1), "tensorrt_rtx") == "strongly-typed"


def test_fp16_is_a_builder_flag_on_8_5_with_explicit_batch():
    plan = plan_build(recipe({"mode": "fp16"}), (8, 5, 2))
    assert (plan.path, plan.onnx_artifact, plan.builder_flags, plan.network_flags) == (
        "fp16-flag", "model.onnx", ["FP16"], ["EXPLICIT_BATCH"])


def test_fp16_is_a_builder_flag_on_10_x_without_network_flags():
    plan = plan_build(recipe({"mode": "fp16"}), (10, 3, 0))
    assert (plan.path, plan.builder_flags, plan.network_flags) == ("fp16-flag", ["FP16"], [])


def test_fp16_on_11_builds_the_strongly_typed_fp16_onnx():
    plan = plan_build(recipe({"mode": "fp16"}), (11, 0))
    assert (plan.path, plan.onnx_artifact, plan.builder_flags, plan.strongly_typed) == (
        "fp16-typed", "model.fp16.onnx", [], True)


def test_int8_auto_is_the_calibrator_on_8_6_with_a_calibration_profile():
    plan = plan_build(recipe({"mode": "int8", "calibrator": "minmax"}, tensorrt="<11"), (8, 6, 1))
    assert (plan.path, plan.calibrator, plan.onnx_artifact) == ("int8-calibrator", "minmax", "model.onnx")
    assert plan.builder_flags[:2] == ["INT8", "FP16"]
    assert plan.calibration_profile == (2, 3, 224, 224)


def test_int8_calibrator_on_10_x_sets_no_calibration_profile_and_calibrates_at_opt():
    plan = plan_build(recipe({"mode": "int8"}, tensorrt="<11"), (10, 3))
    assert plan.calibration_profile is None
    assert plan.calibration_shape == (4, 3, 224, 224)
    assert any("no calibration profile of its own" in n for n in plan.notes)


def test_int8_auto_is_qdq_on_11_with_no_flags():
    plan = plan_build(recipe({"mode": "int8"}), (11, 4))
    assert (plan.path, plan.onnx_artifact, plan.builder_flags, plan.calibrator) == (
        "int8-qdq", "model.int8.trt.onnx", [], None)
    assert "precision.int8 = auto -> qdq on TensorRT 11.4" in plan.notes


def test_int8_qdq_on_10_x_builds_the_qdq_model_with_int8_and_fp16_flags():
    plan = plan_build(recipe({"mode": "int8", "int8": "qdq"}), (10, 3))
    assert (plan.path, plan.onnx_artifact, plan.builder_flags) == ("int8-qdq", "model.int8.trt.onnx", ["INT8", "FP16"])


def test_calibrator_with_an_installed_tensorrt_11_is_refused():
    r = recipe({"mode": "int8", "int8": "calibrator"}, tensorrt="<11")
    with pytest.raises(RecipeError, match="has no calibrators"):
        plan_build(r, (11, 0), "tensorrt_rtx")


def test_keep_gates_uses_layer_constraints_on_classic_and_the_graph_on_11():
    r = recipe({"mode": "int8", "policy": "keep-gates"})
    classic, typed = plan_build(r, (10, 3)), plan_build(r, (11, 1))
    assert (classic.policy_mode, "OBEY_PRECISION_CONSTRAINTS" in classic.builder_flags) == ("layer-constraints", True)
    assert (typed.policy_mode, typed.builder_flags) == ("in-graph", [])


def test_installed_version_outside_the_recipe_range_is_refused():
    r = load_recipe("export/jetson-xavier-fp16.toml")
    with pytest.raises(RecipeError, match=r"TensorRT 10.3 is installed but the recipe targets >=8.5,<8.6"):
        plan_build(r, (10, 3))


def test_dla_recipe_plans_gpu_fallback_on_the_dla_core():
    plan = plan_build(load_recipe("export/jetson-orin-int8-dla.toml"), (10, 3, 0, 30))
    assert plan.dla_core == 0 and "GPU_FALLBACK" in plan.builder_flags


def test_optimization_level_on_8_5_is_refused_at_build_time():
    r = recipe({"mode": "fp16"}, build={"optimization_level": 3})
    with pytest.raises(RecipeError, match="optimization_level needs TensorRT >= 8.6, installed is 8.5"):
        plan_build(r, (8, 5))


def test_profiles_come_from_the_recipe_batch_range():
    plan = plan_build(recipe({"mode": "fp16"}), (10, 3), input_name="images")
    (p,) = plan.profiles
    assert (p.input, p.min, p.opt, p.max) == ("images", (1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224))
