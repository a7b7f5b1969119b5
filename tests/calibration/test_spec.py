"""Calibration specs: the TOML format, and every refusal naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_se.calibration import load_spec
from edge_se.errors import CalibrationError

from calib_helpers import write_spec

REPO = Path(__file__).resolve().parents[2]
GOOD = """
[source]
kind = "folder"
path = "imgs"

[preprocessing]
crop = [32, 32]
resize = 40

[selection]
count = 8
"""


def spec_with(tmp_path: Path, text: str) -> Path:
    return write_spec(tmp_path / "s.toml", text)


@pytest.mark.parametrize("name", ["digits.toml", "digits-deploy.toml", "sample-images.toml", "imagenet-folder.toml"])
def test_shipped_example_specs_parse(name):
    spec = load_spec(REPO / "calibration" / name)
    assert spec.count > 0 and spec.spec_text and spec.description


def test_folder_path_is_relative_to_the_spec_file(tmp_path):
    spec = load_spec(spec_with(tmp_path, GOOD))
    assert spec.path == (tmp_path / "imgs").resolve()
    assert spec.method == "random" and spec.seed == 0 and spec.skip_bad is False


def test_resize_false_means_no_resize(tmp_path):
    spec = load_spec(spec_with(tmp_path, GOOD.replace("resize = 40", "resize = false")))
    assert spec.preprocessing.resize is None


@pytest.mark.parametrize(
    "text, key",
    [
        (GOOD + "\n[extra]\nx = 1\n", "extra"),
        (GOOD.replace('kind = "folder"', 'kind = "folder"\nrecursive = true'), "source.recursive"),
        (GOOD.replace("count = 8", "count = 8\nshuffle = true"), "selection.shuffle"),
        (GOOD.replace("resize = 40", "resize = 40\nnormalize = true"), "normalize"),
    ],
)
def test_unknown_keys_are_refused_naming_key_and_file(tmp_path, text, key):
    path = spec_with(tmp_path, text)
    with pytest.raises(CalibrationError) as e:
        load_spec(path)
    assert key in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("count = 8", 'count = "many"', "selection.count"),
        ("count = 8", "count = true", "selection.count"),
        ("count = 8", "count = 0", "selection.count"),
        ("count = 8", "count = 8\nseed = 1.5", "selection.seed"),
        ("count = 8", 'count = 8\nskip_bad = "yes"', "selection.skip_bad"),
        ('path = "imgs"', "path = 3", "source.path"),
        ("resize = 40", 'resize = "big"', "resize"),
    ],
)
def test_wrong_types_are_refused_naming_key_and_file(tmp_path, old, new, key):
    path = spec_with(tmp_path, GOOD.replace(old, new))
    with pytest.raises(CalibrationError) as e:
        load_spec(path)
    assert key in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ('kind = "folder"', 'kind = "webcam"', "source.kind"),
        ("count = 8", 'count = 8\nmethod = "clustered"', "selection.method"),
        ("count = 8", "", "selection.count"),
        ('path = "imgs"', "", "source.path"),
    ],
)
def test_bad_values_and_missing_keys_are_refused(tmp_path, old, new, needle):
    path = spec_with(tmp_path, GOOD.replace(old, new))
    with pytest.raises(CalibrationError, match=needle.replace(".", r"\.")):
        load_spec(path)


def test_folder_source_needs_a_preprocessing_table(tmp_path):
    text = GOOD.replace("[preprocessing]\ncrop = [32, 32]\nresize = 40\n", "")
    with pytest.raises(CalibrationError, match=r"missing table \[preprocessing\]"):
        load_spec(spec_with(tmp_path, text))


def test_digits_source_defaults_to_the_digits_preprocessing(tmp_path):
    from edge_se.data.digits import DIGITS_PREPROCESS

    spec = load_spec(spec_with(tmp_path, '[source]\nkind = "digits"\n[selection]\ncount = 4\n'))
    assert spec.preprocessing == DIGITS_PREPROCESS and spec.split == "train"


def test_keys_of_another_source_kind_are_refused(tmp_path):
    text = '[source]\nkind = "digits"\npath = "x"\n[selection]\ncount = 4\n'
    with pytest.raises(CalibrationError, match="source.path"):
        load_spec(spec_with(tmp_path, text))


def test_augment_applies_to_digits_only_and_takes_known_values(tmp_path):
    with pytest.raises(CalibrationError, match=r"source\.augment.*only applies"):
        load_spec(spec_with(tmp_path, GOOD.replace('path = "imgs"', 'path = "imgs"\naugment = "train"')))
    text = '[source]\nkind = "digits"\naugment = "{}"\n[selection]\ncount = 4\n'
    with pytest.raises(CalibrationError, match=r"source\.augment.*none \| train.*'jitter'"):
        load_spec(spec_with(tmp_path, text.format("jitter")))
    assert load_spec(spec_with(tmp_path, text.format("train"))).augment == "train"
    assert load_spec(spec_with(tmp_path, text.format("none"))).augment == "none"


def test_invalid_toml_is_refused_naming_the_file(tmp_path):
    path = spec_with(tmp_path, "[source\nkind = ")
    with pytest.raises(CalibrationError, match="not valid TOML") as e:
        load_spec(path)
    assert str(path) in str(e.value)


def test_missing_spec_file_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_count_override_must_be_positive(tmp_path):
    spec = load_spec(spec_with(tmp_path, GOOD))
    assert spec.with_count(3).count == 3
    with pytest.raises(CalibrationError, match="selection.count"):
        spec.with_count(0)
