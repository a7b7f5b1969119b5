"""Where a runtime's model comes from: a bundle folder or one model file.

:func:`resolve` picks the backend and the artifact, checks the artifact's sha256 against the
manifest (unless told not to), and gathers what the runtime needs besides the model file: the
preprocessing spec, the labels, and the manifest's tensor specs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_se.bundle import Bundle, sha256_file
from edge_se.errors import BundleError, InputError, IntegrityError
from edge_se.preprocess import PreprocessSpec
from edge_se.trust import confined_path
from edge_se.runtime.backends.base import TensorSpec, dims_from
from edge_se.runtime.backends.probe import require_tensorrt, require_torch, tensorrt_available

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torchscript")
_ALIASES = {"ort": "onnxruntime", "trt": "tensorrt", "ts": "torchscript"}
SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".ts": "torchscript"}
PRECISIONS = ("fp32", "fp16", "int8")
# Order in which ``auto`` prefers engines when the caller names no precision: fastest first.
_ENGINE_PREFERENCE = ("int8", "fp16", "fp32")


@dataclass
class Source:
    """A resolved model: backend, verified file, and what the manifest says about it."""

    backend: str
    path: Path
    artifact: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    preprocessing: PreprocessSpec | None = None
    labels: list[str] | None = None
    input_shape: tuple[int, ...] | None = None
    verified: bool = False
    bundle_root: Path | None = None
    notes: list[str] = field(default_factory=list)
    pending: Callable[[], object] | None = None

    @property
    def key_sha256(self) -> str:
        """One sha256 naming the artifact's content: the manifest's hashes (or the file's own)."""
        files = self.record.get("files") or []
        if not files:
            return sha256_file(self.path)
        if len(files) == 1:
            return str(files[0]["sha256"])
        return hashlib.sha256("|".join(str(f["sha256"]) for f in files).encode()).hexdigest()

    def complete_verification(self) -> None:
        """Run a verification that ``resolve(defer=True)`` postponed (no-op otherwise)."""
        if self.pending is not None:
            self.pending()
            self.pending = None
            self.verified = True

    def manifest_specs(self, key: str) -> list[TensorSpec]:
        """``inputs`` or ``outputs`` of the artifact record (used by TorchScript and TensorRT)."""
        specs = []
        for i, item in enumerate(self.record.get(key) or []):
            try:
                specs.append(TensorSpec(str(item["name"]), dims_from(item["shape"]), np.dtype(item.get("dtype", "float32"))))
            except (KeyError, TypeError) as e:
                raise BundleError(f"manifest record of {self.artifact}: {key}[{i}] is malformed ({e})") from None
        return specs


def normalise_backend(backend: str) -> str:
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return name


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """One label per line (UTF-8); blank trailing lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"labels file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BundleError(f"labels file {path} is not UTF-8 text (byte {e.start}); expected one class label per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def _preprocessing(value: PreprocessSpec | dict | None, where: str) -> PreprocessSpec | None:
    if value is None or isinstance(value, PreprocessSpec):
        return value
    return PreprocessSpec.from_dict(value, where)


def _labels(value: str | os.PathLike[str] | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return read_labels(value)
    return [str(v) for v in value]


def resolve(path: str | os.PathLike[str], backend: str = "auto", *, precision: str | None = None,
            artifact: str | None = None, preprocessing: PreprocessSpec | dict | None = None,
            labels: str | os.PathLike[str] | Sequence[str] | None = None, verify: bool = True,
            sha256: str | None = None, defer: bool = False) -> Source:
    """Pick backend and artifact for ``path`` (bundle folder or model file) and verify it.

    ``defer=True`` postpones the bundle artifact's sha256 check to
    :meth:`Source.complete_verification` (used when a verified optimized copy may stand in).
    """
    backend = normalise_backend(backend)
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    path = Path(path)
    if path.is_dir() or not path.exists() and not path.suffix:
        return _from_bundle(path, backend, precision, artifact, preprocessing, labels, verify, defer)
    return _from_file(path, backend, preprocessing, labels, verify, sha256)


def _from_file(path, backend, preprocessing, labels, verify, sha256) -> Source:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"cannot tell the format of {path}: expected a bundle folder or a file ending in "
            f"{', '.join(SUFFIXES)}"
        )
    if backend not in ("auto", kind):
        raise InputError(f"{path} is a {kind} file; it cannot run on the {backend} backend")
    _require(kind)
    if not path.is_file():
        raise BundleError(f"model file {path} does not exist")
    verified = False
    if sha256 is not None and verify:
        digest = sha256_file(path)
        if digest != sha256.lower():
            raise IntegrityError(
                f"sha256 mismatch for {path}: expected {sha256[:16]}..., file is {digest[:16]}...; "
                "the file was modified or corrupted; pass --no-verify only if you trust the file"
            )
        verified = True
    spec = _preprocessing(preprocessing, "preprocessing")
    return Source(kind, path, preprocessing=spec, labels=_labels(labels), verified=verified)


def _require(kind: str) -> None:
    if kind == "tensorrt":
        require_tensorrt()
    elif kind == "torchscript":
        require_torch()


def _from_bundle(root, backend, precision, artifact, preprocessing, labels, verify, defer) -> Source:
    bundle = Bundle.open(root)
    notes: list[str] = []
    engines = [n for n in bundle.artifacts if Path(n).suffix in (".engine", ".plan")]
    if backend == "auto":
        if artifact is not None:
            backend = SUFFIXES.get(Path(artifact).suffix, "onnxruntime")
        elif engines and tensorrt_available():
            backend = "tensorrt"
        else:
            backend = "onnxruntime"
            if engines:
                notes.append("bundle has TensorRT engines but TensorRT or a GPU is missing: using ONNX Runtime")
    _require(backend)
    name = _pick(bundle, backend, precision, notes, artifact)
    record = bundle.artifact(name)
    if SUFFIXES.get(Path(name).suffix) != backend:
        raise InputError(f"artifact {name} cannot run on the {backend} backend")
    file = bundle.path(name)
    if not file.is_file():
        raise BundleError(f"artifact file {file} listed in {bundle.root / 'manifest.json'} is missing")
    pending = None
    if verify and defer:
        pending = lambda: bundle.verify(name)  # noqa: E731
    elif verify:
        bundle.verify(name)
    else:
        notes.append("sha256 verification skipped (--no-verify)")
    spec = _preprocessing(preprocessing, "preprocessing")
    if spec is None and bundle.manifest.get("preprocessing") is not None:
        spec = _preprocessing(bundle.section("preprocessing"), f"{bundle.root / 'manifest.json'}: preprocessing")
    label_list = _labels(labels)
    if label_list is None and bundle.manifest.get("labels"):
        entry = bundle.manifest["labels"]
        label_list = read_labels(bundle.verify_file(entry) if verify else confined_path(bundle.root, entry["path"], "labels"))
    shape = (bundle.manifest.get("model") or {}).get("input_shape")
    return Source(
        backend, file, artifact=name, record=record, preprocessing=spec, labels=label_list,
        input_shape=tuple(int(d) for d in shape) if shape else None, verified=verify and not defer,
        bundle_root=bundle.root, notes=notes, pending=pending,
    )


def _pick(bundle: Bundle, backend: str, precision: str | None, notes: list[str], artifact: str | None = None) -> str:
    if artifact is not None:  # named: it must agree with a precision given too
        have = bundle.artifact(artifact).get("precision")
        if precision is not None and have != precision:
            raise InputError(
                f"precision {precision} contradicts artifact {artifact}, which is {have or 'of unknown precision'} "
                f"(--precision {precision} with --artifact {artifact}); pass only one of them"
            )
        return artifact
    suffixes = [s for s, b in SUFFIXES.items() if b == backend]
    found = {n: r for n, r in bundle.artifacts.items() if Path(n).suffix in suffixes}
    if not found:
        have = ", ".join(sorted(bundle.artifacts)) or "none"
        extra = {"tensorrt": " (build one with 'edge-se build-engine')"}.get(backend, "")
        raise BundleError(f"bundle {bundle.root} has no artifact for the {backend} backend{extra} (it has: {have})")
    if precision is None and backend == "tensorrt":
        for p in _ENGINE_PREFERENCE:
            names = sorted(n for n, r in found.items() if r.get("precision") == p)
            if names:
                if len(found) > 1:
                    notes.append(f"several engines in the bundle: chose {names[0]} ({p}); pass precision= to choose")
                return names[0]
        return sorted(found)[0]
    wanted = precision or "fp32"
    names = sorted(n for n, r in found.items() if r.get("precision") == wanted)
    if not names:
        have = ", ".join(f"{n} ({r.get('precision')})" for n, r in sorted(found.items()))
        raise BundleError(f"bundle {bundle.root} has no {wanted} artifact for the {backend} backend (it has: {have})")
    if len(names) > 1:
        # Two INT8 ONNX files: the CPU-fast one for ONNX Runtime, the TensorRT-ready QDQ for TensorRT.
        prefer = [n for n in names if ".cpu." in n] or names
        notes.append(f"several {wanted} artifacts ({', '.join(names)}): chose {prefer[0]}")
        names = prefer
    return names[0]

