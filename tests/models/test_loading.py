"""resolve_model and load_checkpoint: every spec form, every way a user can get it wrong."""

from __future__ import annotations

import sys

import pytest
import torch

from edge_se.bundle import sha256_file
from edge_se.errors import CheckpointError, MissingDependencyError, ModelSpecError
from edge_se.models import create_model, load_checkpoint, parse_spec, resolve_model

# ----------------------------------------------------------------------------- spec parsing


def test_windows_path_spec_splits_at_the_last_colon_after_py():
    spec = parse_spec(r"C:\models\net.py:build")
    assert (spec.source, spec.name, spec.factory) == ("file", r"C:\models\net.py", "build")


def test_unknown_source_prefix_is_refused():
    with pytest.raises(ModelSpecError, match="unknown model source 'tv:'"):
        parse_spec("tv:resnet18")


def test_a_weights_file_given_as_model_spec_points_to_checkpoint():
    with pytest.raises(ModelSpecError, match="looks like a file.*--checkpoint"):
        parse_spec("weights/model.pt")


def test_a_py_file_without_factory_asks_for_one():
    with pytest.raises(ModelSpecError, match=r"names no factory; expected net\.py:FACTORY"):
        parse_spec("net.py")


# ----------------------------------------------------------------------------- zoo / torchvision / timm


def test_zoo_model_resolves_in_eval_mode_with_its_metadata():
    loaded = resolve_model("se_digits")
    assert (loaded.source, loaded.attention_type, loaded.default_input_shape) == ("zoo", "se", (1, 1, 32, 32))
    assert loaded.weights == "random init (seed 0)" and loaded.checkpoint_sha256 is None
    assert not loaded.module.training


def test_in_chans_option_changes_the_default_input_shape():
    loaded = resolve_model("se_resnet18", in_chans=1)
    assert loaded.default_input_shape == (1, 1, 224, 224)


def test_unknown_zoo_name_suggests_close_matches():
    with pytest.raises(ModelSpecError, match="did you mean: se_resnet50.*edge-se models"):
        resolve_model("se_resnet_50")


def test_torchvision_model_resolves_without_weights():
    loaded = resolve_model("torchvision:resnet18")
    assert loaded.source == "torchvision" and loaded.default_input_shape == (1, 3, 224, 224)
    assert loaded.weights == "random init (seed 0)"


def test_torchvision_unknown_name_suggests_close_matches():
    with pytest.raises(ModelSpecError, match="unknown torchvision model 'resnet19'.*resnet18"):
        resolve_model("torchvision:resnet19")


def test_torchvision_weights_option_is_refused_because_nothing_is_downloaded():
    with pytest.raises(ModelSpecError, match="never downloads weights"):
        resolve_model("torchvision:resnet18", weights="DEFAULT")


def test_timm_model_resolves_without_pretrained_weights():
    loaded = resolve_model("timm:resnet18", num_classes=3)
    assert loaded.source == "timm" and loaded.default_input_shape == (1, 3, 224, 224)
    assert loaded.module.get_classifier().out_features == 3


def test_timm_unknown_name_suggests_close_matches():
    with pytest.raises(ModelSpecError, match="unknown timm model 'seresnet19'.*seresnet18"):
        resolve_model("timm:seresnet19")


def test_timm_missing_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'edge-se\[timm\]'"):
        resolve_model("timm:resnet18")


# ----------------------------------------------------------------------------- seeds


def test_same_seed_gives_identical_weights_and_other_seeds_differ():
    a, b, c = (resolve_model("eca_digits", seed=s).module.state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_resolving_leaves_the_callers_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    resolve_model("se_digits", seed=7)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- user files


def test_user_file_factory_resolves_and_records_the_file(tiny_file):
    loaded = resolve_model(f"{tiny_file}:build")
    assert loaded.source == "file" and type(loaded.module).__name__ == "TinyNet"
    assert loaded.user_file == tiny_file.resolve() and loaded.user_file_sha256 == sha256_file(tiny_file)
    assert loaded.default_input_shape is None


def test_options_reach_the_user_factory(tiny_file):
    assert resolve_model(f"{tiny_file}:build", width=6).module.conv.out_channels == 6


def test_user_file_may_import_its_sibling_modules(write_py):
    write_py("from torch import nn\nWIDTH = 3\n", "helpers.py")
    path = write_py("from torch import nn\nimport helpers\ndef build():\n    return nn.Conv2d(3, helpers.WIDTH, 1)\n")
    assert resolve_model(f"{path}:build").module.out_channels == 3


def test_missing_user_file(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model(f"{tmp_path / 'nope.py'}:build")


def test_non_python_model_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({}, path)
    with pytest.raises(ModelSpecError, match="must be a Python file"):
        resolve_model(f"{path}:build")


def test_user_file_that_fails_to_import_says_the_exception_and_line(write_py):
    path = write_py("import torch\n\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(ModelSpecError, match="failed at line 3: RuntimeError: no GPU here"):
        resolve_model(f"{path}:build")


def test_user_file_with_a_syntax_error(write_py):
    path = write_py("def build(:\n    pass\n")
    with pytest.raises(ModelSpecError, match="SyntaxError"):
        resolve_model(f"{path}:build")


def test_missing_factory_lists_the_callables_in_the_file(tiny_file):
    with pytest.raises(ModelSpecError, match="defines no 'make_model'; callables defined there: TinyNet, build"):
        resolve_model(f"{tiny_file}:make_model")


def test_factory_that_raises_says_what_it_raised(write_py):
    path = write_py("def build():\n    raise ValueError('unsupported depth 13')\n")
    with pytest.raises(ModelSpecError, match=r"build\(\) raised ValueError: unsupported depth 13"):
        resolve_model(f"{path}:build")


def test_factory_returning_a_non_module_says_the_type(write_py):
    path = write_py("def build():\n    return {'conv': 1}\n")
    with pytest.raises(ModelSpecError, match="returned a builtins.dict, expected a torch.nn.Module"):
        resolve_model(f"{path}:build")


def test_factory_returning_the_class_asks_for_an_instance(write_py):
    path = write_py("from torch import nn\ndef build():\n    return nn.Identity\n")
    with pytest.raises(ModelSpecError, match="returned the class Identity, expected an instance"):
        resolve_model(f"{path}:build")


def test_factory_needing_arguments_names_them(write_py):
    path = write_py("from torch import nn\ndef build(depth, width=4):\n    return nn.Identity()\n")
    with pytest.raises(ModelSpecError, match="cannot be called with no arguments.*needs: depth"):
        resolve_model(f"{path}:build")


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_reproduces_the_saved_model(tiny_file, tmp_path):
    source = resolve_model(f"{tiny_file}:build", seed=1)
    ckpt = tmp_path / "tiny.pt"
    torch.save(source.module.state_dict(), ckpt)
    loaded = resolve_model(f"{tiny_file}:build", checkpoint=ckpt, seed=2)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), source.module(x))
    assert loaded.checkpoint_sha256 == sha256_file(ckpt)
    assert loaded.weights == f"checkpoint {ckpt} (sha256 {loaded.checkpoint_sha256[:16]}...)"


def test_checkpoint_dict_holding_a_state_dict_is_accepted(tmp_path):
    model = create_model("simam_digits")
    ckpt = tmp_path / "train.pt"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": {}}, ckpt)
    info = load_checkpoint(create_model("simam_digits"), ckpt)
    assert "used the 'model' entry" in info.notes[0]


def test_dataparallel_prefix_is_stripped_and_reported(tmp_path):
    model = create_model("eca_digits")
    ckpt = tmp_path / "dp.pt"
    torch.save(torch.nn.DataParallel(model).state_dict(), ckpt)
    target = create_model("eca_digits")
    info = load_checkpoint(target, ckpt)
    assert any("stripped the 'module.' prefix" in n for n in info.notes)
    assert torch.equal(target.fc.weight, model.fc.weight)


def test_missing_checkpoint():
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model("se_digits", checkpoint="/nonexistent/weights.pt")


def test_text_file_is_not_a_pytorch_checkpoint(tmp_path):
    ckpt = tmp_path / "weights.pt"
    ckpt.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        resolve_model("se_digits", checkpoint=ckpt)


def test_empty_file_is_not_a_pytorch_checkpoint(tmp_path):
    ckpt = tmp_path / "empty.pth"
    ckpt.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        resolve_model("se_digits", checkpoint=ckpt)


def test_pickled_model_is_refused_with_how_to_resave(tmp_path):
    ckpt = tmp_path / "whole_model.pt"
    torch.save(create_model("se_digits"), ckpt)  # pickles the class, not only tensors
    with pytest.raises(CheckpointError) as err:
        resolve_model("se_digits", checkpoint=ckpt)
    message = str(err.value)
    assert "pickled Python objects" in message and "refuses to execute" in message
    assert "torch.save(model.state_dict(), path)" in message and "\n" not in message


def test_renamed_key_is_reported_by_name_as_missing_and_unexpected(tmp_path):
    state = create_model("cbam_digits").state_dict()
    state["classifier.weight"] = state.pop("fc.weight")
    ckpt = tmp_path / "renamed.pt"
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(fc\.weight\); 1 unexpected keys \(classifier\.weight\)"):
        resolve_model("cbam_digits", checkpoint=ckpt)


def test_shape_mismatch_is_reported_by_name(tmp_path):
    ckpt = tmp_path / "three_classes.pt"
    torch.save(create_model("bam_digits", num_classes=3).state_dict(), ckpt)
    with pytest.raises(CheckpointError, match=r"fc\.weight: checkpoint \(3, 128\) vs model \(10, 128\)"):
        resolve_model("bam_digits", checkpoint=ckpt)


def test_many_missing_keys_are_summarised_with_a_count(tmp_path):
    ckpt = tmp_path / "partial.pt"
    torch.save({"fc.weight": torch.zeros(10, 128)}, ckpt)
    with pytest.raises(CheckpointError, match=r"missing keys \(.*, \.\.\. \(\d+ in all\)\)"):
        resolve_model("bam_digits", checkpoint=ckpt)


def test_dict_without_a_state_dict_lists_its_keys(tmp_path):
    ckpt = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, ckpt)
    with pytest.raises(CheckpointError, match="without a state_dict \\(keys: epoch, lr\\)"):
        resolve_model("se_digits", checkpoint=ckpt)


def test_timm_hub_names_are_refused_because_nothing_is_downloaded():
    with pytest.raises(ModelSpecError, match="never downloads models"):
        resolve_model("timm:hf-hub:timm/resnet18.a1_in1k")
