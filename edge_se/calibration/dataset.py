"""A built calibration set on disk, and the check that it fits a model.

Layout of a set folder::

    manifest.json        # format "edge-se-calibration", preprocessing, shapes, hashes, sources
    shard_00000.npy      # N x C x H x W (or N x H x W x C for NHWC), <= 256 samples each
    shard_00001.npy
    labels.npy           # int64 N, only when the source has classes
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edge_se.bundle import sha256_file
from edge_se.errors import CalibrationError, IntegrityError
from edge_se.preprocess import PreprocessSpec
from edge_se.trust import confined_path

FORMAT_NAME = "edge-se-calibration"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_SIZE = 256


@dataclass
class CalibrationSet:
    """A loaded calibration set. Arrays are read from the shards on demand."""

    root: Path
    manifest: dict[str, Any]

    @cached_property
    def preprocessing(self) -> PreprocessSpec:
        """The PreprocessSpec every sample went through."""
        return PreprocessSpec.from_dict(self.manifest["preprocessing"], where=f"{self.root / MANIFEST_NAME}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole set, ``(count, C, H, W)`` (NCHW) or ``(count, H, W, C)``."""
        return tuple(self.manifest["shape"])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample (the model input without its batch dim)."""
        return self.shape[1:]

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    @property
    def classes(self) -> list[str] | None:
        return self.manifest.get("classes")

    @cached_property
    def labels(self) -> np.ndarray | None:
        """int64 class index per sample (into :attr:`classes`), or None for unlabelled sources."""
        rec = self.manifest.get("labels")
        return None if not rec else np.load(confined_path(self.root, rec["path"], "labels"))

    @cached_property
    def sha256(self) -> str:
        """sha256 of manifest.json (which holds every shard's sha256): the set's identity."""
        return sha256_file(self.root / MANIFEST_NAME)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of at most ``batch_size`` samples, in set order."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise CalibrationError(f"batch_size must be a positive integer, got {batch_size!r}")
        pending: list[np.ndarray] = []
        have = 0
        for shard in self.manifest["shards"]:
            arr = np.load(confined_path(self.root, shard["path"], "shard"), mmap_mode="r")
            start = 0
            while start < len(arr):
                take = min(batch_size - have, len(arr) - start)
                pending.append(np.asarray(arr[start : start + take]))
                have += take
                start += take
                if have == batch_size:
                    yield np.concatenate(pending) if len(pending) > 1 else pending[0].copy()
                    pending, have = [], 0
        if pending:
            yield np.concatenate(pending)

    def array(self) -> np.ndarray:
        """All samples as one array of :attr:`shape`, filled shard by shard (memory: the set once)."""
        out = np.empty(self.shape, dtype=self.dtype)
        start = 0
        for shard in self.manifest["shards"]:
            arr = np.load(confined_path(self.root, shard["path"], "shard"), mmap_mode="r")
            if start + len(arr) > len(out) or arr.shape[1:] != out.shape[1:]:
                raise CalibrationError(f"shard {shard['path']} of {self.root} does not match the set's shape "
                                       f"{list(self.shape)}; rebuild the set with 'edge-se calibrate --force'")
            out[start : start + len(arr)] = arr
            start += len(arr)
        if start != len(out):
            raise CalibrationError(f"{self.root} holds {start} samples, its manifest says {len(out)}; rebuild the set")
        return out

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"CalibrationSet({self.root}, count={self.count}, shape={self.shape}, sha256={self.sha256[:12]})"


def load_calibration_set(path: str | os.PathLike[str], verify: bool = True) -> CalibrationSet:
    """Open a built set folder; ``verify`` checks every shard's sha256 against the manifest."""
    root = Path(path)
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise CalibrationError(
            f"{root} is not a calibration set (no {MANIFEST_NAME}); build one with 'edge-se calibrate SPEC --out DIR'"
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{mpath} is not readable JSON ({e}); rebuild the set with 'edge-se calibrate'") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CalibrationError(f"{mpath} is not a calibration-set manifest (format is not {FORMAT_NAME!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CalibrationError(
            f"{mpath} has format_version {manifest.get('format_version')!r}, this edge-se reads {FORMAT_VERSION}; "
            "rebuild the set with 'edge-se calibrate SPEC --out DIR --force'"
        )
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) for s in shards):
        raise CalibrationError(f"{mpath}: 'shards' must be a list of {{path, sha256}} tables; rebuild the set")
    files = list(shards) + ([manifest["labels"]] if manifest.get("labels") else [])
    for rec in files:
        if not isinstance(rec, dict):
            raise CalibrationError(f"{mpath}: labels must be a {{path, sha256}} table; rebuild the set")
        f = confined_path(root, rec.get("path"), "calibration set file")
        if not f.is_file():
            raise CalibrationError(f"calibration set file {f} listed in {mpath} is missing; rebuild the set")
        if verify and sha256_file(f) != rec["sha256"]:
            raise IntegrityError(f"sha256 mismatch for {f}: it changed since the set was built; rebuild the set")
    return CalibrationSet(root, manifest)


def _norm_shape(shape: Sequence[Any]) -> list[Any]:
    return [int(d) if isinstance(d, (int, np.integer)) else None for d in shape]


def check_matches(
    calib: CalibrationSet, input_shape: Sequence[Any], preprocessing: PreprocessSpec | dict[str, Any]
) -> None:
    """Refuse a calibration set whose sample shape or preprocessing differs from the model's.

    ``input_shape`` is the model input with its batch dim (dynamic dims as strings/None are not
    compared). Raises :class:`CalibrationError` naming the first differing field.
    """
    want = _norm_shape(input_shape)[1:]
    have = list(calib.sample_shape)
    if len(want) != len(have) or any(w is not None and w != h for w, h in zip(want, have)):
        raise CalibrationError(
            f"calibration set {calib.root} holds samples of shape {have}, but the model input is "
            f"{list(input_shape)} (without batch: {want}); rebuild the set with the model's crop and color"
        )
    if isinstance(preprocessing, PreprocessSpec):
        preprocessing = preprocessing.to_dict()
    ours = calib.preprocessing.to_dict()
    theirs = PreprocessSpec.from_dict(preprocessing, where="model preprocessing").to_dict()
    for key in ours:
        a, b = ours[key], theirs[key]
        if isinstance(a, list) and isinstance(b, list):
            same = len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
        else:
            same = _close(a, b)
        if not same:
            raise CalibrationError(
                f"calibration set {calib.root} was preprocessed with {key} = {a!r}, but the model expects "
                f"{key} = {b!r}; rebuild the set with the model's preprocessing (edge-se calibrate SPEC --force)"
            )


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


__all__ = ["CalibrationSet", "FORMAT_NAME", "FORMAT_VERSION", "SHARD_SIZE", "check_matches", "load_calibration_set"]
