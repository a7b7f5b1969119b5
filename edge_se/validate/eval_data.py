"""What the validation matrix measures on: labelled images (class sub-folders, a class-names file
or ``--ground-truth`` lines), the digits-hard set, or the sample photos, and the calibration data
for the INT8 variants the matrix creates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_se.errors import InputError

CALIBRATION_SAMPLES = 256
DEFAULT_DIGITS_LIMIT = 2000
DEFAULT_IMAGES_LIMIT = 500


@dataclass
class EvalData:
    """Inputs (preprocessed), optional labels, and the calibration set for created INT8 variants."""

    x: np.ndarray
    y: np.ndarray | None
    description: str
    calib_x: np.ndarray
    calib_y: np.ndarray | None = None
    calib_description: str = ""
    #: data ``auto`` selects on (held out from ``x``); the calibration set when None
    select_x: np.ndarray | None = None
    select_y: np.ndarray | None = None



def labeled_images(folder: str | Path, labels_file: str | Path | None, spec, limit: int | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Images of ``folder`` with labels from class sub-folders or a labels file.

    * ``labels_file`` with ``relative/path<TAB or comma><class index>`` lines: those images, those
      labels (a header line is skipped);
    * class sub-folders (``folder/<class>/*.jpg``): the class index is the sub-folder's line in
      ``labels_file`` (one class name per line) when given, else its rank in sorted order (the
      torchvision ``ImageFolder`` convention; the description says so);
    * neither: ``y`` is ``None`` (numerics, latency and fidelity only).
    """
    from edge_se.preprocess import list_images, preprocess_batch

    folder = Path(folder)
    paths = list_images(folder)
    pairs = _labels_from_file(folder, labels_file) if labels_file is not None else None
    if pairs is not None:
        paths = [p for p in paths if p in pairs]
        if not paths:
            raise InputError(f"no image of {folder} is listed in {labels_file}; list paths relative to the folder")
        y = [pairs[p] for p in paths]
        how = f"labels from {labels_file}"
    else:
        classes = sorted({p.parent.relative_to(folder).parts[0] for p in paths if p.parent != folder})
        if not classes:
            if labels_file is not None:
                raise InputError(f"{folder} has no class sub-folders and {labels_file} lists no image paths")
            x = preprocess_batch(paths[:limit] if limit else paths, spec)
            return x, None, f"{len(x)} unlabeled images from {folder}"
        index = _class_index(classes, labels_file)
        paths = [p for p in paths if p.parent != folder]
        y = [index[p.relative_to(folder).parts[0]] for p in paths]
        shown = ", ".join(f"{c}={index[c]}" for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        how = f"class sub-folders {shown}" + (f", indices from {labels_file}" if labels_file else ", sorted order")
    if limit:
        paths, y = paths[:limit], y[:limit]
    x = preprocess_batch(paths, spec)
    return x, np.asarray(y, dtype=np.int64), f"{len(x)} labeled images from {folder} ({how})"


def _class_index(classes: Sequence[str], labels_file: str | Path | None) -> dict[str, int]:
    if labels_file is None:
        return {c: i for i, c in enumerate(classes)}
    from edge_se.runtime.source import read_labels

    names = read_labels(labels_file)
    missing = [c for c in classes if c not in names]
    if missing:
        raise InputError(
            f"class sub-folders {', '.join(missing[:5])} are not in {labels_file}; name the sub-folders after its lines"
        )
    return {c: names.index(c) for c in classes}


def _labels_from_file(folder: Path, labels_file: str | Path) -> dict[Path, int] | None:
    """``{image path: label}`` for a ``path,label`` file; ``None`` for a class-names file."""
    path = Path(labels_file)
    if not path.is_file():
        raise InputError(f"labels file {path} does not exist")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    pairs: dict[Path, int] = {}
    for i, ln in enumerate(lines, 1):
        sep = "\t" if "\t" in ln else ","
        parts = [p.strip() for p in ln.split(sep)]
        if len(parts) != 2:
            return None if i == 1 else _bad_line(path, i, ln)
        if not parts[1].lstrip("-").isdigit():
            if i == 1:
                continue  # a header line
            _bad_line(path, i, ln)
        pairs[(folder / parts[0])] = int(parts[1])
    return pairs or None


def _bad_line(path: Path, i: int, line: str):
    raise InputError(f"{path}:{i}: expected 'relative/path.jpg,<class index>', found {line!r}")


def evaluation_data(bundle, spec, *, images=None, labels=None, digits=False, limit=None, seed=0) -> EvalData:
    """The inputs the matrix measures on, and the calibration set for INT8 variants it creates."""
    from edge_se.reference.inputs import sample_images

    shape = list(bundle.section("model")["input_shape"])
    if digits:
        if images is not None or labels is not None:
            raise InputError("--digits uses the built-in digits-hard set; drop --images/--labels, or drop --digits")
        if shape[1:] != [1, 32, 32]:
            raise InputError(
                f"--digits needs a digits net (input 1x32x32), this bundle's input is {'x'.join(map(str, shape[1:]))}; "
                f"pass --images DIR --labels FILE instead"
            )
        from edge_se.data.digits import augment, digits_arrays, digits_hard

        x, y = digits_hard(seed)
        n = limit or DEFAULT_DIGITS_LIMIT
        x, y = x[:n], y[:n]
        cx, cy = digits_arrays("train", seed=0)
        # deployment-matched calibration (calibration/README.md): training digits under the
        # training augmentation, the conditions digits-hard measures
        cx = augment(cx[:CALIBRATION_SAMPLES], np.random.default_rng([seed, 0xCA1]))
        sx, sy = digits_hard(seed + 1)  # the same held-out digits under other augmentations
        return EvalData(x, y, f"{len(x)} digits-hard test images (held-out digits, augmented, seed {seed})",
                        cx, cy[:CALIBRATION_SAMPLES],
                        f"{len(cx)} digits of the training split under the training augmentation",
                        sx[:n], sy[:n])
    if labels is not None and images is None:
        raise InputError("--labels and --ground-truth need --images DIR (the images they describe)")
    if images is not None:
        class_names = bundle.verify_file(bundle.manifest["labels"]) if labels is None and bundle.manifest.get("labels") else None
        x, y, desc = labeled_images(images, labels or class_names, spec, limit or DEFAULT_IMAGES_LIMIT)
        calib = sample_images(min(32, CALIBRATION_SAMPLES), spec, seed=seed + 1)
        return EvalData(x, y, desc, calib, None, "32 crops of scikit-learn's sample images")
    x = sample_images(limit or 32, spec, seed=seed)
    calib = sample_images(32, spec, seed=seed + 1)
    return EvalData(x, None, f"{len(x)} crops of scikit-learn's sample images (no labels: accuracy not measured)",
                    calib, None, "32 other crops of the sample images")
