"""Inputs, batching and outputs: checks with expected-vs-got errors, images, split/pad, top-k."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_se.errors import BundleError, ImagesError, InputError
from edge_se.preprocess import PreprocessSpec, preprocess_batch
from edge_se.runtime import Runtime, TensorSpec, top_k
from edge_se.runtime.batching import plan_batch
from runtime_helpers import INPUT_SHAPE, LABELS, torch_logits


@pytest.fixture(scope="module")
def rt(bundle_dir):
    return Runtime.load(bundle_dir)


def test_wrong_rank_says_expected_and_got(rt):
    with pytest.raises(InputError, match=r"expected rank 4 \[\?, 3, 64, 64\], got rank 3 \[3, 64, 64\]; add a batch"):
        rt.predict(np.zeros((3, 64, 64), np.float32))


def test_wrong_shape_says_expected_and_got(rt):
    with pytest.raises(InputError, match=r"expected shape \[\?, 3, 64, 64\], got \[1, 3, 32, 32\]"):
        rt.predict(np.zeros((1, 3, 32, 32), np.float32))


def test_wrong_dtype_says_expected_and_got(rt):
    with pytest.raises(InputError, match="expected dtype float32, got float64"):
        rt.predict(np.zeros(INPUT_SHAPE, np.float64))


def test_wrong_input_names_are_listed(rt):
    with pytest.raises(InputError, match=r"expected inputs \['input'\], got \['x'\]"):
        rt.run({"x": np.zeros(INPUT_SHAPE, np.float32)})


def test_image_that_cannot_be_decoded_is_named(rt, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(ImagesError, match=r"cannot decode image .*broken\.jpg"):
        rt.predict(bad)


def test_image_paths_use_the_manifest_preprocessing(rt, sample_images):
    spec = PreprocessSpec.for_input_shape(INPUT_SHAPE)
    expected = rt.predict(preprocess_batch(sample_images, spec))
    np.testing.assert_array_equal(rt.predict(sample_images), expected)


def test_decoded_array_and_path_give_the_same_result(rt, sample_images):
    decoded = np.asarray(Image.open(sample_images[1]).convert("RGB"))
    np.testing.assert_array_equal(rt.predict(decoded), rt.predict(sample_images[1]))


def test_a_folder_is_read_as_its_sorted_images(rt, sample_images):
    folder = sample_images[0].parent
    np.testing.assert_array_equal(rt.predict(folder), rt.predict(sorted(sample_images)))


def test_dynamic_batch_takes_any_batch_size(rt, tiny_net):
    x = np.random.default_rng(1).standard_normal((5, *INPUT_SHAPE[1:]), dtype=np.float32)
    np.testing.assert_allclose(rt.predict(x), torch_logits(tiny_net, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_static_batch_model_is_split_and_padded(static_bundle_dir, rt, n):
    static = Runtime.load(static_bundle_dir)
    assert static.inputs[0].static_batch == 2
    x = np.random.default_rng(n).standard_normal((n, *INPUT_SHAPE[1:]), dtype=np.float32)
    got = static.predict(x)
    assert got.shape == (n, len(LABELS))
    np.testing.assert_allclose(got, rt.predict(x), rtol=1e-5, atol=1e-6)


def test_batch_outside_the_engine_profile_is_refused():
    spec = TensorSpec("input", (None, 3, 64, 64), np.dtype("float32"), batch_range=(1, 8))
    assert plan_batch(8, spec).direct
    with pytest.raises(InputError, match=r"batch 9 is outside the model's batch range \[1, 8\]"):
        plan_batch(9, spec)


def test_empty_batch_is_refused(rt):
    with pytest.raises(InputError, match="empty batch"):
        rt.predict(np.zeros((0, *INPUT_SHAPE[1:]), np.float32))


def test_classify_returns_sorted_probabilities_with_labels(rt, sample_images):
    ranked = rt.classify(sample_images, k=3)
    assert len(ranked) == 2 and all(len(r) == 3 for r in ranked)
    logits = rt.predict(sample_images)
    for row, entries in zip(logits, ranked):
        assert entries[0].index == int(np.argmax(row))
        assert entries[0].label == LABELS[entries[0].index]
        assert [e.score for e in entries] == sorted((e.score for e in entries), reverse=True)
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        assert entries[0].score == pytest.approx(float(probs.max()), rel=1e-6)


def test_top_k_without_softmax_returns_raw_scores():
    scores = np.array([[0.5, 3.0, -1.0]], np.float32)
    assert [(e.index, e.score) for e in top_k(scores, 2, softmax=False)[0]] == [(1, 3.0), (0, 0.5)]


def test_top_k_larger_than_the_classes_returns_all():
    assert len(top_k(np.zeros((1, 3)), 10)[0]) == 3


def test_labels_that_do_not_match_the_classes_are_refused():
    with pytest.raises(BundleError, match="2 labels but the model outputs 3 classes"):
        top_k(np.zeros((1, 3)), 1, labels=["a", "b"])


def test_top_k_needs_a_classifier_output():
    with pytest.raises(InputError, match=r"classifier output \[N, classes\], got shape \[1, 3, 4\]"):
        top_k(np.zeros((1, 3, 4)), 1)
