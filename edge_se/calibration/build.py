"""Build a calibration set from a spec: select, decode, preprocess, write shards atomically."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edge_se import __version__, progress
from edge_se.bundle import atomic_write_json, owned_mkdtemp, sha256_file, staged_dir, utc_now
from edge_se.calibration.dataset import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SHARD_SIZE,
    CalibrationSet,
    load_calibration_set,
)
from edge_se.calibration.select import select
from edge_se.calibration.sources import BadImage, Source, open_source
from edge_se.calibration.spec import CalibSpec, load_spec
from edge_se.errors import CalibrationError, ImagesError
from edge_se.preprocess import PreprocessSpec, list_images, preprocess_image

#: images taken from a plain ``--calib`` folder when it holds more (TensorRT's guidance: 500-1000)
DEFAULT_FOLDER_COUNT = 512


def _check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise CalibrationError(f"output path {out} exists and is not a folder; choose another --out")
    if any(out.iterdir()) and not force:
        what = "a calibration set" if (out / MANIFEST_NAME).is_file() else "a folder that is not a calibration set"
        raise CalibrationError(f"output folder {out} already exists and is {what}; pass --force to replace it")
    if force and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise CalibrationError(
            f"output folder {out} holds files but is not a calibration set; refusing to replace it even with "
            "--force; choose another --out"
        )


def _too_few(spec: CalibSpec, source: Source, usable: int, skipped: int) -> CalibrationError:
    what = "decodable images" if skipped else ("images" if spec.kind == "folder" else "samples")
    extra = f" ({skipped} undecodable skipped)" if skipped else ""
    return CalibrationError(
        f"asked for {spec.count} calibration samples but {source.description} holds only {usable} {what}{extra}; "
        "lower --count (selection.count) or add images"
    )


def _collect(spec: CalibSpec, source: Source) -> tuple[list[int], dict[int, np.ndarray], dict[int, str], list[dict]]:
    """Pick and preprocess samples; with skip_bad, undecodable files are replaced by the next pick."""
    labels = [c.label for c in source.candidates]
    if len(labels) < spec.count:
        raise _too_few(spec, source, len(labels), 0)
    arrays: dict[int, np.ndarray] = {}
    modes: dict[int, str] = {}
    excluded: set[int] = set()
    skipped: list[dict] = []
    while True:
        chosen = select(labels, spec.count, spec.method, spec.seed, excluded)
        if len(chosen) < spec.count:
            raise _too_few(spec, source, len(labels) - len(excluded), len(excluded))
        todo = [i for i in chosen if i not in arrays]
        bad = None
        for i in progress.track(todo, f"preprocessing {len(todo)} calibration images"):
            cand = source.candidates[i]
            try:
                im = cand.load()
            except BadImage as e:
                if not spec.skip_bad:
                    raise
                bad = i
                skipped.append({"path": cand.key, "reason": str(e)})
                progress.info(f"[yellow]skipped[/yellow] undecodable image {cand.key}")
                break
            modes[i] = im.mode
            arrays[i] = preprocess_image(im, spec.preprocessing)
        if bad is None:
            return chosen, arrays, modes, skipped
        excluded.add(bad)


def build_calibration_set(spec: CalibSpec | str | os.PathLike[str], out_dir: str | os.PathLike[str],
                          force: bool = False) -> Path:
    """Build the set described by ``spec`` (a CalibSpec or a TOML path) into ``out_dir``.

    Nothing is written at ``out_dir`` unless the whole set was built (staged in a sibling
    temporary folder, then renamed). An existing set is replaced only with ``force``.
    Returns ``out_dir``.
    """
    if not isinstance(spec, CalibSpec):
        spec = load_spec(spec)
    out = Path(out_dir)
    _check_out(out, force)
    source = open_source(spec)
    chosen, arrays, modes, skipped = _collect(spec, source)

    target_mode = "L" if spec.preprocessing.color == "GRAY" else "RGB"
    converted = dict(sorted(Counter(m for m in modes.values() if m != target_mode).items()))
    if converted:
        detail = ", ".join(f"{n} {m}" for m, n in converted.items())
        progress.info(f"[yellow]converted[/yellow] {sum(converted.values())} images to {target_mode}: {detail}")

    x = np.stack([arrays[i] for i in chosen])
    labels = None
    if source.classes is not None:
        labels = np.asarray([source.candidates[i].label for i in chosen], dtype=np.int64)
    per_class: dict[str, int] = {}
    if labels is not None:
        counts = Counter(int(v) for v in labels)
        per_class = {name: counts.get(k, 0) for k, name in enumerate(source.classes or [])}

    samples = []
    for i in chosen:
        rec: dict[str, Any] = dict(source.candidates[i].record)
        rec["mode"] = modes[i]
        if spec.kind == "folder":
            rec["sha256"] = sha256_file(Path(source.info["root"]) / rec["path"])
        samples.append(rec)
    return _publish(out, x, labels, {
        "spec": {
            "path": str(spec.spec_file) if spec.spec_file else None,
            "sha256": spec.spec_sha256,
            "text": spec.spec_text,
            "description": spec.description,
        },
        "source": {"kind": spec.kind, **source.info},
        "selection": {"count": spec.count, "seed": spec.seed, "method": spec.method, "skip_bad": spec.skip_bad},
        "preprocessing": spec.preprocessing.to_dict(),
        "classes": source.classes,
        "counts_per_class": per_class,
        "converted": {"to": target_mode, "count": sum(converted.values()), "by_mode": converted},
        "skipped": skipped,
        "samples": samples,
    })


def _publish(out: Path, x: np.ndarray, labels: np.ndarray | None, fields: dict[str, Any]) -> Path:
    """Write ``x`` as shards (+ labels) and the manifest into a staging folder renamed to ``out``."""
    with staged_dir(out) as stage:
        shards = []
        for k, start in enumerate(range(0, len(x), SHARD_SIZE)):
            name = f"shard_{k:05d}.npy"
            np.save(stage / name, x[start : start + SHARD_SIZE])
            shards.append({"path": name, "count": int(min(SHARD_SIZE, len(x) - start)), "sha256": sha256_file(stage / name)})
        label_rec = None
        if labels is not None:
            np.save(stage / "labels.npy", labels)
            label_rec = {"path": "labels.npy", "sha256": sha256_file(stage / "labels.npy")}
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": utc_now(),
                    "edge_se_version": __version__, **fields, "count": int(len(x)), "shape": list(x.shape),
                    "dtype": str(x.dtype), "shards": shards, "labels": label_rec}
        atomic_write_json(stage / MANIFEST_NAME, manifest)
    return out


def folder_spec(folder: Path, preprocessing: PreprocessSpec, count: int | None = None) -> CalibSpec:
    """A spec for a plain folder of images, preprocessed as the bundle records (``--calib photos/``)."""
    try:
        images = list_images(folder)
    except ImagesError as e:
        raise CalibrationError(f"--calib {folder}: {e} and no calibration-set {MANIFEST_NAME}") from None
    n = min(len(images), count or DEFAULT_FOLDER_COUNT)
    classes = sorted({p.relative_to(folder).parts[0] for p in images if len(p.relative_to(folder).parts) > 1})
    labels = f"; subfolders are class labels 0..{len(classes) - 1} in sorted order ({classes[0]!r} = 0)" if classes else ""
    text = f"# --calib {folder}: an image folder, the bundle's preprocessing\n{sorted(preprocessing.to_dict().items())}\n"
    return CalibSpec(kind="folder", preprocessing=preprocessing, count=n, path=folder.resolve(),
                     description=f"image folder {folder} ({n} of {len(images)} images{labels})", spec_text=text)


def tensors_set(path: Path, preprocessing: PreprocessSpec, out: Path) -> Path:
    """A set from a ``.npy``/``.npz`` of already preprocessed tensors (N first; ``labels`` optional in a ``.npz``)."""
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle a file from elsewhere
    except (OSError, ValueError) as e:
        raise CalibrationError(f"--calib {path}: not a readable .npy/.npz without pickled objects ({e})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = [k for k in loaded.files if k != "labels"]
            if len(keys) != 1:
                raise CalibrationError(f"--calib {path}: a .npz must hold one input array (and optionally 'labels'), "
                                       f"found {', '.join(loaded.files) or 'nothing'}")
            x = loaded[keys[0]]
            labels = loaded["labels"].astype(np.int64) if "labels" in loaded.files else None
    else:
        x = loaded
    if x.dtype not in (np.float32, np.float16) or x.ndim != 4 or len(x) == 0:
        raise CalibrationError(f"--calib {path}: expected preprocessed float32/float16 tensors N x C x H x W, got "
                               f"{x.dtype} {list(x.shape)}")
    if not np.isfinite(x).all():
        raise CalibrationError(f"--calib {path}: the tensors hold NaN or infinity; calibrate on finite data")
    if labels is not None and labels.shape != (len(x),):
        raise CalibrationError(f"--calib {path}: 'labels' has shape {list(labels.shape)}, expected [{len(x)}]")
    return _publish(out, np.ascontiguousarray(x, dtype=np.float32), labels, {
        "spec": {"path": None, "sha256": "", "text": "", "description": f"preprocessed tensors from {path.name}"},
        "source": {"kind": "tensors", "file": str(path), "sha256": sha256_file(path)},
        "selection": {"count": int(len(x)), "seed": 0, "method": "all", "skip_bad": False},
        "preprocessing": preprocessing.to_dict(),
        "classes": None, "counts_per_class": {}, "converted": {"to": None, "count": 0, "by_mode": {}},
        "skipped": [], "samples": [],
    })


def _describe(pre: PreprocessSpec) -> str:
    resize = f"resize {pre.resize}, " if pre.resize else ""
    return (f"{pre.color}, {resize}center crop {pre.crop[0]}x{pre.crop[1]}, mean {list(pre.mean)}, "
            f"std {list(pre.std)}")


def _cache_key(spec: CalibSpec) -> str:
    """The spec's identity plus what it reads: the folder listing (path, size, mtime) or data version."""
    h = hashlib.sha256(spec.identity().encode())
    h.update(str(FORMAT_VERSION).encode())
    if spec.kind == "folder" and spec.path is not None and spec.path.is_dir():
        for p in sorted(spec.path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(spec.path).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        from edge_se.data.digits import DATA_VERSION

        h.update(f"digits-data-{DATA_VERSION}".encode())
    return h.hexdigest()[:16]


def calibration_from(path_or_spec: CalibSpec | str | os.PathLike[str],
                     out_cache: str | os.PathLike[str] | None = None,
                     preprocessing: PreprocessSpec | None = None) -> CalibrationSet:
    """A calibration set from a built set folder, a TOML spec path, a CalibSpec, or, given the
    bundle's ``preprocessing``, a plain folder of images or a ``.npy``/``.npz`` of preprocessed tensors.

    A spec is built into ``out_cache/calib-<spec stem>-<key>`` (reused when already there; the
    key hashes the spec text, the count and, for folders, every file's path, size and mtime)
    or, without ``out_cache``, into a new temporary folder (left for the caller to remove).
    """
    if isinstance(path_or_spec, CalibSpec):
        spec = path_or_spec
    else:
        p = Path(path_or_spec)
        if p.is_dir() and (p / MANIFEST_NAME).is_file():
            return load_calibration_set(p)
        if not p.exists():
            raise CalibrationError(f"calibration set or spec {p} does not exist; pass an image folder, a set folder, "
                                   "a .npy/.npz of preprocessed tensors or a .toml spec")
        if (p.is_dir() or p.suffix.lower() in (".npy", ".npz")) and preprocessing is None:
            raise CalibrationError(f"{p} is not a calibration set (no {MANIFEST_NAME}) or a .toml spec; build one "
                                   "with 'edge-se calibrate SPEC --out DIR'")
        if p.suffix.lower() in (".npy", ".npz") and p.is_file():
            root = Path(out_cache) if out_cache is not None else owned_mkdtemp("edge-se-calib-")
            out = root / f"tensors-{p.stem}-{sha256_file(p)[:12]}"
            built = load_calibration_set(out if (out / MANIFEST_NAME).is_file() else tensors_set(p, preprocessing, out))
            progress.info(f"calibrating on the {built.count} preprocessed tensors in {p} (taken as the bundle's "
                          "preprocessing)")
            return built
        if p.is_dir():
            spec = folder_spec(p, preprocessing)
            progress.info(f"calibrating on {spec.description}, preprocessed as the bundle records: "
                          f"{_describe(preprocessing)}")
        else:
            spec = load_spec(p)
    stem = spec.spec_file.stem if spec.spec_file else "spec"
    if out_cache is None:
        out = owned_mkdtemp("edge-se-calib-") / "set"
    else:
        out = Path(out_cache) / f"calib-{stem}-{_cache_key(spec)}"
        if (out / MANIFEST_NAME).is_file():
            return load_calibration_set(out)
    try:
        build_calibration_set(spec, out)
    except (CalibrationError, OSError):
        if (out / MANIFEST_NAME).is_file():  # another process built the same set first
            return load_calibration_set(out)
        raise
    return load_calibration_set(out)


__all__ = ["build_calibration_set", "calibration_from"]
