"""``edge_se.preprocess`` (NumPy + Pillow, no torch) against torchvision's own transforms on real photos.

torchvision's ``Resize(r)`` truncates the long side, ``CenterCrop`` rounds the offset and
``ToTensor`` divides by 255; a bundle's tensor must equal what the model was trained with, bit
for bit, for every size, aspect ratio and resampling filter a user may meet.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_se.preprocess import PreprocessSpec, crop_offset, preprocess_image, resized_size

T = pytest.importorskip("torchvision.transforms", reason="needs torchvision")

SIZES = [(640, 427), (427, 640), (300, 200), (257, 257), (511, 333), (224, 300), (1000, 229), (225, 224)]
RECIPES = [(256, 224), (232, 224), (73, 64), (36, 32)]
FILTERS = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
           "nearest": T.InterpolationMode.NEAREST}


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_image

    return [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def _torchvision(im: Image.Image, spec: PreprocessSpec, mode) -> np.ndarray:
    tf = T.Compose([T.Resize(spec.resize, interpolation=mode), T.CenterCrop(spec.crop), T.ToTensor(),
                    T.Normalize(spec.mean, spec.std)])
    return tf(im).numpy()


@pytest.mark.parametrize("interpolation", list(FILTERS))
def test_tensor_equals_torchvision_for_every_size_aspect_and_filter(photos, interpolation):
    for photo in photos:
        for size in SIZES:
            im = photo.resize(size, Image.BILINEAR)
            for resize, crop in RECIPES:
                spec = PreprocessSpec(crop=(crop, crop), resize=resize, interpolation=interpolation)
                ours = preprocess_image(im, spec)
                want = _torchvision(im, spec, FILTERS[interpolation])
                assert ours.shape == want.shape
                assert np.array_equal(ours, want), (size, resize, crop, float(np.abs(ours - want).max()))


def test_gray_and_rectangular_crops_equal_torchvision(photos):
    for size in SIZES[:5]:
        im = photos[0].resize(size, Image.BILINEAR)
        spec = PreprocessSpec(crop=(160, 200), resize=220, color="GRAY", mean=(0.5,), std=(0.25,))
        want = T.Compose([T.Grayscale(), T.Resize(220), T.CenterCrop((160, 200)), T.ToTensor(),
                          T.Normalize((0.5,), (0.25,))])(im).numpy()
        assert np.array_equal(preprocess_image(im, spec), want), size


def test_size_and_offset_rules_are_torchvisions():
    import torchvision.transforms.functional as F

    for w, h in [(640, 427), (427, 640), (301, 299), (1000, 229), (229, 1000), (255, 256)]:
        im = Image.new("RGB", (w, h))
        assert F.resize(im, 256).size == resized_size(w, h, 256)
        rw, rh = resized_size(w, h, 256)
        assert crop_offset(rw, 224) == int(round((rw - 224) / 2.0))
    # the rounding that differed: 427x640 -> 256x383.6 is 383 (truncated), not 384; offset 0.5 rounds to even
    assert resized_size(427, 640, 256) == (256, 383) and crop_offset(225, 224) == 0 and crop_offset(227, 224) == 2
