"""Recipes: the shipped ones load; unknown keys and impossible combinations are refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_se.tensorrt.recipe import RecipeError, load_recipe, parse_recipe
from tests.tensorrt.conftest import RECIPES

BASE = {
    "model": {"spec": "se_resnet18", "input_shape": [4, 3, 224, 224], "batch": [1, 4, 8]},
    "target": {"name": "desktop", "tensorrt": ">=10.0,<11"},
    "precision": {"mode": "fp16"},
}


def recipe(**sections):
    data = {k: dict(v) for k, v in BASE.items()}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_recipe(data, "test.toml", Path("."))


def refused(match: str, **sections):
    with pytest.raises(RecipeError, match=match):
        recipe(**sections)


REQUIRED_SHIPPED = {"jetson-orin-int8", "jetson-orin-int8-dla", "jetson-xavier-fp16", "desktop-fp16", "desktop-int8-trt11"}


def test_the_five_required_recipes_ship():
    assert REQUIRED_SHIPPED <= {p.stem for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads(path):
    r = load_recipe(path)
    assert r.name == path.stem
    assert r.model_spec and len(r.input_shape) == 4


def test_load_recipe_exposes_what_export_needs():
    r = load_recipe(Path("export/jetson-orin-int8.toml"))
    assert (r.model_spec, r.input_shape, r.batch, r.dynamic_batch) == ("se_resnet18", (4, 3, 224, 224), (1, 4, 8), True)
    assert (r.precision, r.policy, r.calibrator) == ("int8", "keep-gates", "minmax")
    assert r.calibration_spec == (Path("calibration") / "sample-images.toml").resolve()


def test_unknown_key_is_refused_with_the_valid_keys():
    refused(r"unknown key 'build.workspace'; valid keys here: build.workspace_mib", build={"workspace": 1})


def test_unknown_top_level_table_is_refused():
    refused(r"unknown key 'engine'", engine={"x": 1})


def test_wrong_type_is_refused():
    refused(r"'target.dla_core' must be a int", target={"dla_core": "0"})


def test_dla_on_a_desktop_target_is_refused():
    refused(r"target desktop has no DLA", target={"dla_core": 0})


def test_dla_with_tensorrt_11_0_to_11_4_0_is_refused():
    refused(r"11\.0, 11\.1, 11\.2, 11\.3, 11\.4, which has no DLA on Jetson", model={"batch": [4, 4, 4]},
            target={"name": "jetson-orin", "tensorrt": ">=10.3", "dla_core": 0})


def test_dla_returns_with_tensorrt_11_4_1_on_orin():
    from edge_se.tensorrt.versions import has_dla_support

    assert [has_dla_support(v) for v in ((10, 7), (11, 3, 0), (11, 4, 0, 6), (11, 4, 1, 2), (11, 5))] == [
        True, False, False, True, True]


def test_dla_with_dynamic_shapes_is_refused():
    refused(r"DLA needs static shapes", target={"name": "jetson-orin", "tensorrt": ">=10.3,<10.4", "dla_core": 0})


def test_dla_core_beyond_the_device_is_refused():
    refused(r"dla_core 2 out of range; jetson-orin has DLA cores 0-1", model={"batch": [4, 4, 4]},
            target={"name": "jetson-orin", "tensorrt": ">=10.3,<10.4", "dla_core": 2})


def test_int8_on_a_device_without_int8_is_refused():
    refused(r"target jetson-nano has no INT8", target={"name": "jetson-nano", "tensorrt": ">=8.5"},
            precision={"mode": "int8", "int8": "qdq"})


def test_jetson_with_a_tensorrt_its_jetpack_does_not_ship_is_refused():
    refused(r"JetPack 5 \(the last for Xavier\) ships TensorRT 8\.5", target={"name": "jetson-xavier", "tensorrt": ">=10.0"})


def test_calibrator_with_tensorrt_11_is_refused():
    refused(r"TensorRT 11\+, which removed calibrators", target={"tensorrt": ">=10.0"},
            precision={"mode": "int8", "int8": "calibrator"}, calibration={"spec": "c.toml"})


def test_calibrator_path_without_calibration_spec_is_refused():
    refused(r"needs \[calibration\] spec", precision={"mode": "int8"})


def test_int8_options_on_an_fp16_recipe_are_refused():
    refused(r"'precision.calibrator' applies only to precision.mode = \"int8\"", precision={"calibrator": "minmax"})


def test_batch_range_must_be_ordered():
    refused(r"min <= opt <= max", model={"batch": [8, 4, 1], "input_shape": [4, 3, 224, 224]})


def test_input_shape_batch_must_be_the_opt_batch():
    refused(r"must equal the opt batch 4", model={"input_shape": [1, 3, 224, 224]})


def test_calibration_batch_outside_the_batch_range_is_refused():
    refused(r"calibration.batch 16 is outside", calibration={"batch": 16})


def test_tensorrt_range_with_no_supported_version_is_refused():
    refused(r"admits no TensorRT edge-se supports", target={"tensorrt": "<8.5"})


def test_malformed_version_range_is_refused():
    refused(r"is not like '>=10.3'", target={"tensorrt": "10.3+"})


def test_resolution_range_sets_the_profile_shapes():
    r = recipe(model={"input_shape": [4, 3, 224, 224], "resolution": [[160, 160], [224, 224], [320, 320]]})
    assert r.shapes() == ((1, 3, 160, 160), (4, 3, 224, 224), (8, 3, 320, 320))


def test_missing_recipe_file_names_the_shipped_ones(tmp_path):
    with pytest.raises(RecipeError, match=r"export/\*\.toml"):
        load_recipe(tmp_path / "nope.toml")


def test_invalid_toml_is_refused(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[model\n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(p)
