"""The zoo registry: registration, duplicate refusal, lookup, listing."""

from __future__ import annotations

import importlib.util

import pytest

from edge_se.errors import ModelSpecError
from edge_se.models import (
    DuplicateModelError,
    count_params,
    create_model,
    list_models,
    model_info,
    register_model,
)

EXPECTED_ZOO = {
    "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d",
    *(f"{a}_resnet{d}" for a in ("cbam", "bam", "sk", "simam", "eca") for d in (18, 50)),
    *(f"{a}_digits" for a in ("se", "cbam", "bam", "sk", "simam", "eca")),
}


def test_zoo_lists_every_required_model():
    assert EXPECTED_ZOO <= set(list_models())


def test_list_models_sorts_numbers_naturally():
    assert list_models("se_resnet*") == ["se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152"]


def test_list_models_pattern_without_wildcard_is_a_substring():
    assert list_models("digits") == sorted(n for n in EXPECTED_ZOO if n.endswith("_digits"))


def test_registering_a_taken_name_is_refused():
    def se_resnet18():  # same name as a zoo entry
        return None

    with pytest.raises(DuplicateModelError, match="se_resnet18.*registered twice"):
        register_model(se_resnet18)
    assert model_info("se_resnet18").entrypoint is not se_resnet18


def test_a_module_registering_a_duplicate_fails_at_import(write_py):
    list_models()  # the zoo is loaded
    path = write_py(
        """
        from edge_se.models.registry import register_model

        @register_model(attention="se")
        def se_resnet50():
            '''A clash with the zoo.'''
        """,
        "clash.py",
    )
    spec = importlib.util.spec_from_file_location("clash_module", path)
    with pytest.raises(DuplicateModelError, match="se_resnet50"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_unknown_name_lists_close_matches_and_the_listing_command():
    with pytest.raises(ModelSpecError) as err:
        model_info("se_resnet51")
    message = str(err.value)
    assert "se_resnet50" in message and "edge-se models" in message
    assert "\n" not in message


def test_model_info_carries_shape_attention_family_and_description():
    info = model_info("se_resnext50_32x4d")
    assert info.default_input_shape == (1, 3, 224, 224)
    assert info.attention_type == "se"
    assert info.family == "se-resnext"
    assert info.num_classes == 1000
    assert "ResNeXt" in info.description


def test_digits_models_take_one_gray_32x32_image_and_give_10_classes():
    for name in list_models("*_digits"):
        info = model_info(name)
        assert (info.default_input_shape, info.num_classes) == ((1, 1, 32, 32), 10), name


def test_create_model_forwards_options():
    model = create_model("se_resnet18", num_classes=7)
    assert model.fc.out_features == 7


def test_create_model_refuses_an_option_the_entry_point_does_not_take():
    with pytest.raises(ModelSpecError, match="does not accept.*pretrained.*num_classes"):
        create_model("se_resnet18", pretrained=True)


def test_attn_kwargs_reach_the_attention_modules():
    assert count_params("se_resnet18", attn_kwargs={"rd_ratio": 1 / 4}) > count_params("se_resnet18")


def test_count_params_matches_a_real_build():
    model = create_model("cbam_digits")
    assert count_params("cbam_digits") == sum(p.numel() for p in model.parameters())


def test_param_counts_match_the_papers_for_se_models():
    # SENet paper, Table 2 / timm: SE-ResNet-50 28.09M, SE-ResNeXt-50 (32x4d) 27.56M.
    assert round(count_params("se_resnet50") / 1e6, 2) == 28.09
    assert round(count_params("se_resnext50_32x4d") / 1e6, 2) == 27.56
