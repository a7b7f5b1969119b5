"""scikit-learn's handwritten digits as 32x32 gray images: the toolkit's offline task data.

How a digit becomes a model input (reproduce it exactly with :func:`digit_to_image` and
:data:`DIGITS_PREPROCESS`, the same ``preprocess_image`` path the runtime uses):

1. the 8x8 array of ink values 0..16 becomes an 8-bit gray image: ``round(v * 255 / 16)``;
2. Pillow resizes it to 32x32 with bilinear interpolation (a mode "L" image);
3. ``preprocess_image(img, DIGITS_PREPROCESS)``: scale 1/255, ``(x - 0.5) / 0.5``, so ink is
   +1 and background is -1; layout NCHW, shape 1x32x32, float32.

Split: a stratified 75/25 train/test split with ``random_state = seed`` (scikit-learn's
``train_test_split``), so 1347 train and 450 test digits.

Augmentations work on the [0, 1] image (before the mean/std step) with NumPy and Pillow only,
seeded by a NumPy ``Generator``, so they are deterministic for a seed:

- training: random affine (rotation +-10 deg, translation +-2 px, scale 0.9-1.1) and gaussian
  noise (sigma uniform in 0..0.12), clipped to [0, 1];
- digits-hard (:func:`digits_hard`): each held-out test digit under 20 seeded augmentations
  drawn from the training distribution (``HARD_AUGMENT``), 9,000 samples: enough samples to
  resolve a 0.1-point INT8 loss, still in distribution.
- ``STRESS_AUGMENT`` (``digits_hard(..., stress=True)``): a stronger, out-of-distribution variant
  (rotation +-15 deg, shear +-10 deg, translation +-3 px, scale 0.85-1.1, contrast 0.6-1.0,
  brightness -0.05..+0.15, noise sigma 0.02-0.15). It was digits-hard's first definition; it was
  changed because it puts about a fifth of the samples near decision ties (FP32 accuracy ~80%),
  where quantizing any single convolution of se_digits to INT8 flips 0.5-0.8% of predictions
  (measured with ONNX Runtime, per-channel U8S8) - it measures tie-breaking, not INT8 damage.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edge_se.preprocess import PreprocessSpec, preprocess_image

#: Bump when the digit -> tensor recipe or an augmentation changes (invalidates cached checkpoints).
DATA_VERSION = 1
INPUT_SHAPE = (1, 1, 32, 32)
NUM_CLASSES = 10
IMAGE_SIZE = 32
TEST_FRACTION = 0.25
HARD_AUGMENTATIONS = 20

#: The preprocessing of every ``*_digits`` model (recorded in bundles).
DIGITS_PREPROCESS = PreprocessSpec(
    crop=(IMAGE_SIZE, IMAGE_SIZE), resize=None, color="GRAY", scale=1.0 / 255.0, mean=(0.5,), std=(0.5,)
)


@dataclass(frozen=True)
class AffineRange:
    """Ranges of one augmentation recipe (degrees, pixels, factors)."""

    rotate: float
    translate: float
    scale: tuple[float, float]
    shear: float = 0.0
    noise: tuple[float, float] = (0.0, 0.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    brightness: tuple[float, float] = (0.0, 0.0)


TRAIN_AUGMENT = AffineRange(rotate=10.0, translate=2.0, scale=(0.9, 1.1), noise=(0.0, 0.12))
HARD_AUGMENT = TRAIN_AUGMENT
STRESS_AUGMENT = AffineRange(
    rotate=15.0, translate=3.0, scale=(0.85, 1.1), shear=10.0, noise=(0.02, 0.15),
    contrast=(0.6, 1.0), brightness=(-0.05, 0.15),
)


def digit_to_image(pixels: np.ndarray):
    """An 8x8 digit (values 0..16) -> the 32x32 mode "L" Pillow image the models see."""
    from PIL import Image

    arr = np.asarray(pixels, dtype=np.float64).reshape(8, 8)
    u8 = np.clip(np.rint(arr * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Image.fromarray(u8).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.stack([preprocess_image(digit_to_image(p), DIGITS_PREPROCESS) for p in d.images])
    x.setflags(write=False)
    y = d.target.astype(np.int64)
    y.setflags(write=False)
    return x, y


def raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 raw digits: (pixels N x 8 x 8 float64 0..16, labels int64)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target.astype(np.int64)


@functools.lru_cache(maxsize=8)
def split_indices(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of the stratified 75/25 split for ``seed``."""
    from sklearn.model_selection import train_test_split

    _, y = _all_digits()
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=TEST_FRACTION, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def digits_arrays(split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed digits ``(x float32 N x 1 x 32 x 32, y int64 N)`` of ``train``/``test``/``all``."""
    x, y = _all_digits()
    if split == "all":
        return x.copy(), y.copy()
    train, test = split_indices(seed)
    if split == "train":
        return x[train], y[train]
    if split == "test":
        return x[test], y[test]
    from edge_se.errors import InputError

    raise InputError(f"digits split must be train | test | all, got {split!r}")


def _inverse_affine(rot: float, shear: float, scale: float, tx: float, ty: float) -> tuple[float, ...]:
    """Pillow's AFFINE data (output -> input mapping) for a transform about the image centre."""
    c = IMAGE_SIZE / 2.0
    r, s = math.radians(rot), math.radians(shear)
    # forward linear part: scale * rotation * shear(x)
    a, b = math.cos(r), -math.sin(r) + math.cos(r) * math.tan(s)
    d, e = math.sin(r), math.cos(r) + math.sin(r) * math.tan(s)
    a, b, d, e = a * scale, b * scale, d * scale, e * scale
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ox, oy = c + tx, c + ty  # where the centre goes
    return (ia, ib, c - ia * ox - ib * oy, id_, ie, c - id_ * ox - ie * oy)


def augment(x: np.ndarray, rng: np.random.Generator, recipe: AffineRange = TRAIN_AUGMENT) -> np.ndarray:
    """Randomly augment normalized digits ``N x 1 x 32 x 32`` (returns a new float32 array)."""
    from PIL import Image

    n = len(x)
    rot = rng.uniform(-recipe.rotate, recipe.rotate, n)
    shear = rng.uniform(-recipe.shear, recipe.shear, n)
    scale = rng.uniform(*recipe.scale, n)
    tx, ty = rng.uniform(-recipe.translate, recipe.translate, (2, n))
    contrast = rng.uniform(*recipe.contrast, n)
    bright = rng.uniform(*recipe.brightness, n)
    sigma = rng.uniform(*recipe.noise, n)
    noise = rng.standard_normal(x.shape).astype(np.float32)

    x01 = x[:, 0] * np.float32(0.5) + np.float32(0.5)
    out = np.empty_like(x01)
    for i in range(n):
        im = Image.fromarray(np.ascontiguousarray(x01[i], dtype=np.float32))
        data = _inverse_affine(rot[i], shear[i], scale[i], tx[i], ty[i])
        out[i] = np.asarray(im.transform(im.size, Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=0.0))
    out = out * contrast[:, None, None].astype(np.float32) + bright[:, None, None].astype(np.float32)
    out = out + noise[:, 0] * sigma[:, None, None].astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    return ((out - np.float32(0.5)) / np.float32(0.5))[:, None].astype(np.float32)


@functools.lru_cache(maxsize=4)
def _digits_hard(seed: int, n_aug: int, stress: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = digits_arrays("test", seed=0)
    rng = np.random.default_rng([seed, 0xD161])
    xs = np.tile(x, (n_aug, 1, 1, 1))
    ys = np.tile(y, n_aug)
    hard = augment(xs, rng, STRESS_AUGMENT if stress else HARD_AUGMENT)
    hard.setflags(write=False)
    ys.setflags(write=False)
    return hard, ys


def digits_hard(seed: int = 0, n_aug: int = HARD_AUGMENTATIONS, stress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test digits (split seed 0) under ``n_aug`` seeded augmentations each.

    ``stress=True`` uses the stronger out-of-distribution ``STRESS_AUGMENT`` instead.

    Returns ``(x float32 N x 1 x 32 x 32, y int64 N)`` with N = 450 * n_aug (9,000 by default),
    identical for the same ``seed``. Ordered variant-major: samples ``k*450 .. k*450+449`` are
    variant ``k`` of every test digit, so any prefix ``x[:n]`` is a class-balanced subset.
    """
    x, y = _digits_hard(int(seed), int(n_aug), bool(stress))
    return x.copy(), y.copy()


__all__ = [
    "DATA_VERSION",
    "DIGITS_PREPROCESS",
    "HARD_AUGMENT",
    "STRESS_AUGMENT",
    "INPUT_SHAPE",
    "NUM_CLASSES",
    "TRAIN_AUGMENT",
    "augment",
    "digit_to_image",
    "digits_arrays",
    "digits_hard",
    "raw_digits",
    "split_indices",
]
