"""Where calibration images come from: a folder, scikit-learn's digits, or crops of
scikit-learn's two sample images.

A source is a list of :class:`Candidate` (a lazily decoded image with its class and the record
the manifest keeps about it) plus the class names. Selection (:mod:`edge_se.calibration.select`)
picks among candidates; only the picked ones are decoded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_se.calibration.spec import CalibSpec
from edge_se.errors import CalibrationError, ImagesError
from edge_se.preprocess import list_images

ROOT_CLASS = "(root)"


@dataclass
class Candidate:
    """One possible calibration sample."""

    key: str                      # relative path, "digits/123", "china.jpg#4"
    label: int | None             # class index into the source's class list
    load: Callable[[], Any]       # -> PIL image in its original mode
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    candidates: list[Candidate]
    classes: list[str] | None     # None: the source has no labels
    description: str              # "folder /data/calib", for messages
    info: dict[str, Any] = field(default_factory=dict)


class BadImage(CalibrationError):
    """A candidate image that cannot be decoded (carries its key)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _where(spec: CalibSpec) -> str:
    return str(spec.spec_file) if spec.spec_file else "calibration spec"


def _decode_file(path: Path, rel: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImage(
            rel,
            f"calibration image {path} cannot be decoded ({type(e).__name__}: {e}); remove or replace it, "
            "or pass --skip-bad (selection.skip_bad = true) to skip undecodable files",
        ) from None


def folder_source(spec: CalibSpec) -> Source:
    """Every image under the folder, recursively; a first-level subfolder is the image's class."""
    root = spec.path
    if root is None:  # parse_spec guarantees it; guard for specs built in code
        raise CalibrationError(f"{_where(spec)}: a folder source needs source.path")
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise CalibrationError(f"calibration folder {root} is not readable (permission denied); fix its permissions")
    try:
        paths = list_images(root)
    except ImagesError as e:
        raise CalibrationError(f"{_where(spec)}: {e}; check source.path (relative to the spec file)") from None
    rels = [p.relative_to(root).as_posix() for p in paths]
    class_of = [r.split("/", 1)[0] if "/" in r else ROOT_CLASS for r in rels]
    has_classes = any(c != ROOT_CLASS for c in class_of)
    classes = sorted(set(class_of)) if has_classes else None
    index = {c: i for i, c in enumerate(classes or [])}
    cands = []
    for p, rel, cls in zip(paths, rels, class_of):
        cands.append(
            Candidate(
                key=rel,
                label=index[cls] if has_classes else None,
                load=lambda p=p, rel=rel: _decode_file(p, rel),
                record={"path": rel, "class": cls if has_classes else None},
            )
        )
    return Source(cands, classes, f"folder {root}", {"root": str(root), "images_found": len(paths)})


def digits_source(spec: CalibSpec) -> Source:
    """scikit-learn's digits (split ``spec.split`` of the seeded 75/25 split) as 32x32 images.

    ``spec.augment == "train"``: each digit under one draw of the training augmentation (rotation,
    shift, scale, pixel noise; :data:`edge_se.data.digits.TRAIN_AUGMENT`), seeded per digit by
    ``(selection seed, digit index)``: the conditions digits-hard and deployment see.
    """
    from edge_se.data.digits import digit_to_image, raw_digits, split_indices

    images, target = raw_digits()
    train, test = split_indices(0)
    idx = {"train": train, "test": test, "all": np.arange(len(target))}[spec.split]
    augmented = spec.augment == "train"

    def load(i: int) -> Any:
        img = digit_to_image(images[i])
        return _augmented_digit(img, [spec.seed, int(i), _AUGMENT_SALT]) if augmented else img

    cands = [
        Candidate(
            key=f"digits/{int(i)}",
            label=int(target[i]),
            load=lambda i=i: load(int(i)),
            record={"index": int(i), "class": str(int(target[i])),
                    **({"augment": "train", "augment_seed": [spec.seed, int(i), _AUGMENT_SALT]} if augmented else {})},
        )
        for i in idx
    ]
    what = f"digits ({spec.split} split{', training augmentation' if augmented else ''})"
    return Source(cands, [str(d) for d in range(10)], what, {"split": spec.split, "augment": spec.augment})


_AUGMENT_SALT = 0xA06


def _augmented_digit(img: Any, seed: list[int]) -> Any:
    """One draw of the training augmentation on a mode "L" digit image (returns mode "L")."""
    from PIL import Image

    from edge_se.data.digits import TRAIN_AUGMENT, augment

    x = (np.asarray(img, dtype=np.float32)[None, None] / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    out = augment(x, np.random.default_rng(seed), TRAIN_AUGMENT)[0, 0] * np.float32(0.5) + np.float32(0.5)
    return Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8))


def _sample_images() -> list[tuple[str, np.ndarray]]:
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return [(Path(f).name, img) for f, img in zip(data.filenames, data.images)]


def sample_images_source(spec: CalibSpec) -> Source:
    """``spec.count`` seeded random crops of scikit-learn's two sample photos.

    Each crop: area 10-100 % of the photo, aspect ratio 3/4-4/3 (log-uniform), flipped
    left-right with probability 0.5 (like torchvision's RandomResizedCrop); the class is the
    photo. The preprocessing spec then resizes and centre-crops it.
    """
    from PIL import Image

    photos = _sample_images()
    rng = np.random.default_rng([spec.seed, 0x5A11])
    cands = []
    for i in range(spec.count):
        pick = i % len(photos) if spec.method == "stratified" else int(rng.integers(len(photos)))
        name, img = photos[pick]
        h, w = img.shape[:2]
        area = rng.uniform(0.1, 1.0) * h * w
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = int(min(w, round(math.sqrt(area * aspect))))
        ch = int(min(h, round(math.sqrt(area / aspect))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        flip = bool(rng.random() < 0.5)

        def load(img=img, box=(left, top, left + cw, top + ch), flip=flip):
            im = Image.fromarray(img).crop(box)
            return im.transpose(Image.FLIP_LEFT_RIGHT) if flip else im

        cands.append(
            Candidate(
                key=f"{name}#{i}",
                label=pick,
                load=load,
                record={"image": name, "class": name, "box": [left, top, left + cw, top + ch], "flip": flip},
            )
        )
    return Source(cands, [n for n, _ in photos], "scikit-learn sample images (crops)", {})


SOURCES: dict[str, Callable[[CalibSpec], Source]] = {
    "folder": folder_source,
    "digits": digits_source,
    "sample-images": sample_images_source,
}


def open_source(spec: CalibSpec) -> Source:
    """The candidates of ``spec``'s source."""
    return SOURCES[spec.kind](spec)


__all__ = ["BadImage", "Candidate", "ROOT_CLASS", "SOURCES", "Source", "open_source"]
