"""Calibration-set specs: a small TOML file saying where images come from, how they are
preprocessed and which of them are picked.

```toml
[source]
kind = "folder"        # "folder" (recursive) | "digits" (scikit-learn) | "sample-images"
path = "data/calib"    # folder only; relative to the spec file
split = "train"        # digits only: "train" | "test" | "all" (the seeded 75/25 split)
augment = "none"       # digits only: "none" | "train" (each digit under the training augmentation)

[preprocessing]        # PreprocessSpec keys (edge_se.preprocess)
crop = [224, 224]
resize = 256           # shorter side first; resize = false: no resize (TOML has no null)

[selection]
count = 512
seed = 0
method = "random"      # "random" | "stratified" (by class subfolder / digit label / source image)
skip_bad = false       # folder only: skip undecodable files (recorded) instead of refusing
```

Unknown keys and wrong types are refused with the key and the file named.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_se.errors import CalibrationError, InputError
from edge_se.preprocess import PreprocessSpec

if sys.version_info >= (3, 11):
    import tomllib  # novermin - tomli below on Python < 3.11
else:  # pragma: no cover - python 3.8-3.10
    import tomli as tomllib

SOURCE_KINDS = ("folder", "digits", "sample-images")
METHODS = ("random", "stratified")
DIGITS_SPLITS = ("train", "test", "all")
DIGITS_AUGMENTS = ("none", "train")
_TOP_KEYS = {"description": str, "source": dict, "preprocessing": dict, "selection": dict}
_SOURCE_KEYS = {"kind": str, "path": str, "split": str, "augment": str}
_SELECTION_KEYS = {"count": int, "seed": int, "method": str, "skip_bad": bool}


@dataclass(frozen=True)
class CalibSpec:
    """A parsed calibration spec. ``path`` is an absolute folder for folder sources."""

    kind: str
    preprocessing: PreprocessSpec
    count: int
    seed: int = 0
    method: str = "random"
    path: Path | None = None
    split: str = "train"
    augment: str = "none"
    skip_bad: bool = False
    description: str = ""
    spec_file: Path | None = None
    spec_text: str = ""

    @property
    def spec_sha256(self) -> str:
        """sha256 of the spec file's text (empty text for specs built in code)."""
        return hashlib.sha256(self.spec_text.encode("utf-8")).hexdigest()

    def with_count(self, count: int) -> "CalibSpec":
        """The same spec with another sample count (the ``--count`` override)."""
        where = str(self.spec_file) if self.spec_file else "calibration spec"
        return replace(self, count=_positive("selection.count", count, where))

    def identity(self) -> str:
        """A short hash of everything that decides the set's contents (spec text + count)."""
        h = hashlib.sha256()
        h.update(self.spec_text.encode("utf-8"))
        h.update(repr((self.kind, str(self.path), self.split, self.augment, self.count, self.seed, self.method,
                       self.skip_bad, sorted(self.preprocessing.to_dict().items()))).encode())
        return h.hexdigest()[:16]


def _check_table(table: dict[str, Any], schema: dict[str, type], prefix: str, where: str) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in schema:
            valid = ", ".join(f"{prefix}{k}" for k in schema)
            raise CalibrationError(f"{where}: unknown key '{name}'; valid keys here: {valid}")
        expected = schema[key]
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if not ok:
            raise CalibrationError(
                f"{where}: key '{name}' must be a {expected.__name__}, got {type(value).__name__} ({value!r})"
            )


def _positive(key: str, value: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CalibrationError(f"{where}: key '{key}' must be a positive integer, got {value!r}")
    return value


def _choice(key: str, value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise CalibrationError(f"{where}: key '{key}' must be one of {' | '.join(allowed)}, got {value!r}")
    return value


def parse_spec(data: dict[str, Any], where: str, base_dir: Path, text: str = "") -> CalibSpec:
    """Validate a spec dict (a parsed TOML document); ``base_dir`` anchors relative paths."""
    _check_table(data, _TOP_KEYS, "", where)
    for section in ("source", "selection"):
        if section not in data:
            raise CalibrationError(f"{where}: missing table [{section}]; see calibration/README.md for the format")
    source, selection = data["source"], data["selection"]
    _check_table(source, _SOURCE_KEYS, "source.", where)
    _check_table(selection, _SELECTION_KEYS, "selection.", where)

    if "kind" not in source:
        raise CalibrationError(f"{where}: missing key 'source.kind' ({' | '.join(SOURCE_KINDS)})")
    kind = _choice("source.kind", source["kind"], SOURCE_KINDS, where)
    path = None
    if kind == "folder":
        if "path" not in source:
            raise CalibrationError(f"{where}: source.kind = \"folder\" needs 'source.path' (relative to the spec file)")
        path = (base_dir / os.path.expanduser(source["path"])).resolve()
    elif "path" in source:
        raise CalibrationError(f"{where}: key 'source.path' only applies to kind = \"folder\", not {kind!r}")
    if "split" in source and kind != "digits":
        raise CalibrationError(f"{where}: key 'source.split' only applies to kind = \"digits\", not {kind!r}")
    split = _choice("source.split", source.get("split", "train"), DIGITS_SPLITS, where)
    if "augment" in source and kind != "digits":
        raise CalibrationError(f"{where}: key 'source.augment' only applies to kind = \"digits\", not {kind!r}")
    augment = _choice("source.augment", source.get("augment", "none"), DIGITS_AUGMENTS, where)
    if selection.get("skip_bad") and kind != "folder":
        raise CalibrationError(f"{where}: key 'selection.skip_bad' only applies to kind = \"folder\"")

    if "count" not in selection:
        raise CalibrationError(f"{where}: missing key 'selection.count' (how many calibration samples)")
    count = _positive("selection.count", selection["count"], where)
    seed = selection.get("seed", 0)
    if seed < 0:
        raise CalibrationError(f"{where}: key 'selection.seed' must be >= 0, got {seed}")
    method = _choice("selection.method", selection.get("method", "random"), METHODS, where)

    if "preprocessing" in data:
        table = dict(data["preprocessing"])
        if table.get("resize") is False:  # TOML has no null: resize = false means "no resize"
            table["resize"] = None
        try:
            pre = PreprocessSpec.from_dict(table, where=f"{where} [preprocessing]")
        except InputError as e:
            raise CalibrationError(str(e)) from None
    elif kind == "digits":
        from edge_se.data.digits import DIGITS_PREPROCESS

        pre = DIGITS_PREPROCESS
    else:
        raise CalibrationError(
            f"{where}: missing table [preprocessing]; it must match the deployed model's "
            "(crop, resize, color, mean, std), e.g. crop = [224, 224] and resize = 256"
        )
    return CalibSpec(
        kind=kind, preprocessing=pre, count=count, seed=seed, method=method, path=path, split=split,
        augment=augment, skip_bad=bool(selection.get("skip_bad", False)), description=data.get("description", ""),
        spec_file=None, spec_text=text,
    )


def load_spec(path: str | os.PathLike[str]) -> CalibSpec:
    """Read and validate a TOML calibration spec; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration spec {path} does not exist; pass a .toml spec (see calibration/*.toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"cannot read calibration spec {path}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CalibrationError(f"{path}: not valid TOML ({e})") from None
    spec = parse_spec(data, str(path), path.parent.resolve(), text)
    return replace(spec, spec_file=path.resolve())


__all__ = ["CalibSpec", "DIGITS_SPLITS", "METHODS", "SOURCE_KINDS", "load_spec", "parse_spec"]
