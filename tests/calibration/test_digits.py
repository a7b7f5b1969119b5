"""The digits task data: how a digit becomes an input, the split, augmentations, digits-hard."""

from __future__ import annotations

import numpy as np

from edge_se.data import digits as D
from edge_se.preprocess import preprocess_image


def test_a_digit_becomes_a_32x32_gray_input_through_the_shared_preprocessing():
    pixels, labels = D.raw_digits()
    x, y = D.digits_arrays("all")
    for i in (0, 7, 1234):
        np.testing.assert_array_equal(x[i], preprocess_image(D.digit_to_image(pixels[i]), D.DIGITS_PREPROCESS))
    assert x.shape == (1797, 1, 32, 32) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0  # background -1, full ink +1
    np.testing.assert_array_equal(y, labels)


def test_split_is_a_fixed_stratified_75_25_split():
    train, test = D.split_indices(0)
    assert len(train) == 1347 and len(test) == 450 and not set(train) & set(test)
    _, y = D.digits_arrays("test")
    assert np.bincount(y).min() >= 43 and np.bincount(y).max() <= 46
    np.testing.assert_array_equal(D.split_indices(0)[1], test)


def test_training_augmentation_is_seeded_and_changes_the_images():
    x, _ = D.digits_arrays("train")
    a = D.augment(x[:32], np.random.default_rng(3))
    np.testing.assert_array_equal(a, D.augment(x[:32], np.random.default_rng(3)))
    assert not np.array_equal(a, D.augment(x[:32], np.random.default_rng(4)))
    assert a.shape == (32, 1, 32, 32) and a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1
    assert 0.01 < np.abs(a - x[:32]).mean() < 0.5


def test_digits_hard_has_20_variants_of_each_test_digit():
    x, y = D.digits_hard()
    _, y_test = D.digits_arrays("test")
    assert x.shape == (9000, 1, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.tile(y_test, 20))  # variant-major: a prefix covers every digit


def test_digits_hard_is_deterministic_for_a_seed_and_differs_across_seeds():
    a, ya = D.digits_hard(seed=0)
    b, yb = D.digits_hard(seed=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    c, _ = D.digits_hard(seed=1, n_aug=1)
    assert not np.array_equal(a[:450], c)


def test_digits_hard_is_recomputed_identically_outside_the_cache():
    a, _ = D.digits_hard(seed=5, n_aug=1)
    D._digits_hard.cache_clear()
    b, _ = D.digits_hard(seed=5, n_aug=1)
    np.testing.assert_array_equal(a, b)
