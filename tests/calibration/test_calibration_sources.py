"""The digits and sample-images sources, sharding, batches, check_matches and calibration_from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from calib_helpers import write_spec

from edge_se.calibration import (
    build_calibration_set,
    calibration_from,
    check_matches,
    load_calibration_set,
    load_spec,
)
from edge_se.data.digits import DIGITS_PREPROCESS, digits_arrays, split_indices
from edge_se.errors import CalibrationError

DIGITS = '[source]\nkind = "digits"\nsplit = "{split}"\n[selection]\ncount = {count}\nmethod = "{method}"\n'
SAMPLES = """[source]
kind = "sample-images"
[preprocessing]
crop = [48, 48]
resize = 56
[selection]
count = {count}
method = "{method}"
seed = {seed}
"""


def digits_spec(tmp_path, count, split="train", method="random"):
    return load_spec(write_spec(tmp_path / "d.toml", DIGITS.format(split=split, count=count, method=method)))


@pytest.fixture(scope="module")
def digits300(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits300")
    return load_calibration_set(build_calibration_set(digits_spec(tmp, 300, method="stratified"), tmp / "set"))


def test_digit_samples_are_exactly_the_digits_model_inputs(digits300):
    x_all, y_all = digits_arrays("all")
    idx = [r["index"] for r in digits300.manifest["samples"]]
    np.testing.assert_array_equal(digits300.array(), x_all[idx])
    np.testing.assert_array_equal(digits300.labels, y_all[idx])
    assert digits300.preprocessing == DIGITS_PREPROCESS


def test_digits_train_split_never_uses_test_digits(digits300):
    train, test = split_indices(0)
    idx = {r["index"] for r in digits300.manifest["samples"]}
    assert idx <= set(train.tolist()) and not idx & set(test.tolist())


def test_digits_stratified_by_label(digits300):
    assert digits300.manifest["counts_per_class"] == {str(d): 30 for d in range(10)}


def test_shards_hold_at_most_256_samples(digits300):
    assert [s["count"] for s in digits300.manifest["shards"]] == [256, 44]
    assert [np.load(digits300.root / s["path"]).shape[0] for s in digits300.manifest["shards"]] == [256, 44]


def test_batches_cover_the_set_in_order_across_shards(digits300):
    batches = list(digits300.batches(100))
    assert [len(b) for b in batches] == [100, 100, 100]
    np.testing.assert_array_equal(np.concatenate(batches), digits300.array())
    with pytest.raises(CalibrationError, match="batch_size"):
        next(digits300.batches(0))


def test_digits_count_larger_than_the_split_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match=r"asked for 500 .* holds only 450 samples"):
        build_calibration_set(digits_spec(tmp_path, 500, split="test"), tmp_path / "set")


def test_sample_images_give_many_distinct_crops_of_both_photos(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.toml", SAMPLES.format(count=64, method="stratified", seed=0)))
    calib = load_calibration_set(build_calibration_set(spec, tmp_path / "set"))
    x = calib.array()
    assert x.shape == (64, 3, 48, 48)
    assert len({row.tobytes() for row in x}) == 64
    assert calib.manifest["counts_per_class"] == {"china.jpg": 32, "flower.jpg": 32}
    assert 0 < sum(r["flip"] for r in calib.manifest["samples"]) < 64


def test_sample_image_crops_depend_on_the_seed(tmp_path):
    def boxes(seed):
        spec = load_spec(write_spec(tmp_path / f"s{seed}.toml", SAMPLES.format(count=8, method="random", seed=seed)))
        out = build_calibration_set(spec, tmp_path / f"set{seed}")
        return [r["box"] for r in load_calibration_set(out).manifest["samples"]]

    assert boxes(0) != boxes(1)


def test_check_matches_accepts_the_models_shape_and_preprocessing(digits300):
    check_matches(digits300, (1, 1, 32, 32), DIGITS_PREPROCESS)
    check_matches(digits300, ("batch", 1, 32, 32), DIGITS_PREPROCESS.to_dict())


def test_check_matches_refuses_another_shape(digits300):
    with pytest.raises(CalibrationError, match=r"shape \[1, 32, 32\].*\[1, 1, 28, 28\]"):
        check_matches(digits300, (1, 1, 28, 28), DIGITS_PREPROCESS)


@pytest.mark.parametrize("field, value", [("mean", (0.1307,)), ("std", (0.3081,)), ("scale", 1.0), ("resize", 36)])
def test_check_matches_names_the_differing_preprocessing_field(digits300, field, value):
    with pytest.raises(CalibrationError, match=f"{field} = "):
        check_matches(digits300, (1, 1, 32, 32), replace(DIGITS_PREPROCESS, **{field: value}))


def test_calibration_from_builds_a_spec_once_into_the_cache(tmp_path):
    path = write_spec(tmp_path / "d.toml", DIGITS.format(split="train", count=20, method="random"))
    first = calibration_from(path, out_cache=tmp_path / "cache")
    again = calibration_from(path, out_cache=tmp_path / "cache")
    assert first.root == again.root and first.sha256 == again.sha256
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.root.name]
    assert calibration_from(first.root).sha256 == first.sha256


def test_calibration_from_without_cache_builds_into_a_temporary_folder(tmp_path):
    import shutil

    calib = calibration_from(digits_spec(tmp_path, 10))
    try:
        assert calib.count == 10 and calib.root.is_dir() and calib.root.parent.name.startswith("edge-se-calib-")
    finally:
        shutil.rmtree(calib.root.parent)


def test_calibration_from_refuses_a_folder_that_is_not_a_set(tmp_path):
    with pytest.raises(CalibrationError, match="not a calibration set"):
        calibration_from(tmp_path)


def test_calibration_from_rebuilds_a_cached_folder_set_when_the_folder_changes(tmp_path, image_folder):
    from calib_helpers import folder_spec, write_image

    spec = folder_spec(tmp_path, 4)
    first = calibration_from(spec, out_cache=tmp_path / "cache")
    write_image(image_folder / "cat" / "new.png", seed=99)
    second = calibration_from(spec, out_cache=tmp_path / "cache")
    assert second.root != first.root
    assert calibration_from(spec, out_cache=tmp_path / "cache").root == second.root


def _augmented_set(tmp_path, name, seed=0):
    text = ('[source]\nkind = "digits"\naugment = "train"\n[selection]\ncount = 40\nmethod = "stratified"\n'
            f"seed = {seed}\n")
    spec = load_spec(write_spec(tmp_path / f"{name}.toml", text))
    return load_calibration_set(build_calibration_set(spec, tmp_path / name))


def test_augmented_digits_are_the_same_digits_under_seeded_training_augmentation(tmp_path):
    a, b, other = _augmented_set(tmp_path, "a"), _augmented_set(tmp_path, "b"), _augmented_set(tmp_path, "c", seed=1)
    np.testing.assert_array_equal(a.array(), b.array())  # reproducible from the spec
    x_all, y_all = digits_arrays("all")
    idx = [r["index"] for r in a.manifest["samples"]]
    np.testing.assert_array_equal(a.labels, y_all[idx])
    assert a.manifest["source"]["augment"] == "train"
    assert all(r["augment"] == "train" for r in a.manifest["samples"])
    diff = np.abs(a.array() - x_all[idx]).mean(axis=(1, 2, 3))
    assert (diff > 0.01).all()  # every digit moved / got noise ...
    corr = [np.corrcoef(p.ravel(), q.ravel())[0, 1] for p, q in zip(a.array(), x_all[idx])]
    assert np.median(corr) > 0.3  # ... but is still that digit, not noise
    assert not np.array_equal(a.array(), other.array())  # another seed, another draw
