"""Validation inputs: real images (scikit-learn's sample images, or a user folder) and seeded noise."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edge_se.errors import ImagesError
from edge_se.preprocess import PreprocessSpec, list_images, preprocess_batch, preprocess_image


def sample_image_arrays() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china.jpg, flower.jpg) as HxWx3 uint8 RGB arrays."""
    from sklearn.datasets import load_sample_images

    return [np.asarray(im) for im in load_sample_images().images]


def sample_crops(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` deterministic crops (varied position, size and flip) of the sample images."""
    rng = np.random.default_rng(seed)
    photos = sample_image_arrays()
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crop = img[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.ascontiguousarray(crop))
    return crops


def sample_images(n: int, spec: PreprocessSpec, seed: int = 0) -> np.ndarray:
    """``n`` preprocessed real images from scikit-learn's sample photos (the whole photos first)."""
    photos = sample_image_arrays()
    items = photos[:n] + sample_crops(max(0, n - len(photos)), seed)
    return np.stack([preprocess_image(im, spec) for im in items])


def folder_images(folder: str | Path, spec: PreprocessSpec, limit: int | None = None) -> np.ndarray:
    """Preprocessed images from a user folder (sorted, recursive), at most ``limit``."""
    paths = list_images(folder)
    if limit is not None:
        paths = paths[:limit]
    return preprocess_batch(paths, spec)


def random_inputs(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Seeded standard-normal input of ``shape`` (float32)."""
    return np.random.default_rng(seed).standard_normal(tuple(int(s) for s in shape)).astype(np.float32)


#: factors applied to one noise input by :func:`scaled_inputs` (small, large, negated)
SCALES = (0.1, 10.0, -1.0)


def scaled_inputs(x: np.ndarray, scales: Sequence[float] = SCALES) -> np.ndarray:
    """Copies of the sample ``x`` (CxHxW) times each factor in ``scales``, stacked (float32).

    A model whose traced graph froze a branch on its input's sign or scale (``if x.mean() > 0``,
    ``if x.abs().max() < 1``) takes the other branch on one of them.
    """
    return np.stack([np.asarray(x, dtype=np.float32) * np.float32(s) for s in scales]).astype(np.float32)


def real_inputs(
    spec: PreprocessSpec, n: int, images: str | Path | None = None, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Real images for validation and a sentence saying where they came from."""
    if images is not None:
        x = folder_images(images, spec, limit=n)
        return x, f"{len(x)} images from {images}"
    if spec.color == "GRAY":
        # digits-sized grayscale models: use the photos converted to gray
        x = sample_images(n, spec, seed)
        return x, f"{n} grayscale crops of scikit-learn's sample images"
    x = sample_images(n, spec, seed)
    return x, f"{n} crops of scikit-learn's sample images"


__all__ = ["ImagesError", "folder_images", "random_inputs", "real_inputs", "sample_crops", "scaled_inputs", "sample_images"]
