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
from edge_se.runtime import choice
from edge_se.runtime.backends.probe import require_openvino, require_tensorrt, require_torch, tensorrt_available

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt", "torchscript", "pt2", "aoti", "executorch")
_ALIASES = {"ort": "onnxruntime", "ov": "openvino", "trt": "tensorrt", "ts": "torchscript", "et": "executorch",
            "pte": "executorch"}
SUFFIXES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".ts": "torchscript",
            ".pt2": "pt2", ".pte": "executorch"}
#: an AOTInductor package is a ``.pt2`` too: told apart by its double suffix
AOTI_SUFFIX = ".aoti.pt2"
#: backends that need torch (and run only when asked for)
TORCH_BACKENDS = ("torchscript", "pt2", "aoti")
#: backends that run a file kind besides its own (OpenVINO compiles ONNX files)
ALSO_RUNS = {"onnxruntime": ("openvino",)}
#: ``bf16`` is a compute precision of the FP32 artifact on OpenVINO, not a file of its own
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# Order in which ``auto`` prefers engines when the caller names no precision: fastest first.
_ENGINE_PREFERENCE = ("int8", "fp16", "fp32")
#: which of a bundle's two INT8 ONNX files a backend runs when no saved choice says otherwise,
#: measured (benchmarks/cpu_backends.py, se_resnet50 and cbam_resnet50 on an AMD EPYC): the CPU
#: file (U8 activations) on both; ONNX Runtime runs the symmetric TensorRT-ready file 3-4x slower,
#: OpenVINO 0-21 % slower. Issue 17 measured the TensorRT-ready file fastest on OpenVINO on an
#: Intel Xeon with AMX: where that holds, ``edge-se bench --save-choice`` records it.
INT8_FILE_PREFERENCE = {"onnxruntime": (".cpu.", ".trt."), "openvino": (".cpu.", ".trt.")}
#: precisions each backend runs (None: whatever the artifact is)
BACKEND_PRECISIONS = {"openvino": ("fp32", "bf16", "int8")}


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
    #: the precision the backend computes in (``bf16`` runs the FP32 artifact), when not the artifact's
    compute: str | None = None
    #: the backend came from a saved measurement (``auto``), so a load failure may fall back
    chosen: bool = False

    @property
    def precision(self) -> str | None:
        """What runs: the compute precision, else the artifact's."""
        return self.compute or self.record.get("precision")

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
        """``inputs`` or ``outputs`` of the artifact record (used by the torch backends and TensorRT).

        A record's ``batch_range`` ([min, max], torch.export artifacts) bounds a dynamic batch."""
        specs = []
        batch = self.record.get("batch_range")
        for i, item in enumerate(self.record.get(key) or []):
            try:
                dims = dims_from(item["shape"])
                lo_hi = (1, None)
                if isinstance(batch, list) and len(batch) == 2 and dims and dims[0] is None:
                    lo_hi = (int(batch[0]), None if batch[1] is None else int(batch[1]))
                specs.append(TensorSpec(str(item["name"]), dims, np.dtype(item.get("dtype", "float32")), lo_hi))
            except (KeyError, TypeError, ValueError) as e:
                raise BundleError(f"manifest record of {self.artifact}: {key}[{i}] is malformed ({e})") from None
        return specs


def file_kind(name: str | os.PathLike[str]) -> str | None:
    """The backend that runs a file of this name (a :data:`SUFFIXES` value), None if unknown."""
    low = str(name).lower()
    if low.endswith(AOTI_SUFFIX):
        return "aoti"
    return SUFFIXES.get(Path(low).suffix)


def normalise_backend(backend: str) -> str:
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return name


def runs_on(kind: str, backend: str) -> bool:
    """True when ``backend`` can run a file of ``kind`` (a :data:`SUFFIXES` value)."""
    return backend == kind or backend in ALSO_RUNS.get(kind, ())


def check_precision(backend: str, precision: str | None) -> None:
    """Refuse a precision the backend does not run (bf16 only on OpenVINO, fp16 not there)."""
    if precision is None or backend == "auto":
        return
    allowed = BACKEND_PRECISIONS.get(backend)
    if allowed is not None and precision not in allowed:
        raise InputError(f"the {backend} backend runs {', '.join(allowed)}, not {precision}; "
                         "choose another --precision or --backend")
    if precision == "bf16" and allowed is None:
        raise InputError(f"precision bf16 runs on the openvino backend (OpenVINO's BF16 on CPUs that have it), "
                         f"not on {backend}; pass --backend openvino")


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
    check_precision(backend, precision)
    path = Path(path)
    if path.is_dir() or not path.exists() and not path.suffix:
        return _from_bundle(path, backend, precision, artifact, preprocessing, labels, verify, defer)
    return _from_file(path, backend, precision, preprocessing, labels, verify, sha256)


def _from_file(path, backend, precision, preprocessing, labels, verify, sha256) -> Source:
    kind = file_kind(path)
    if kind is None:
        raise InputError(
            f"cannot tell the format of {path}: expected a bundle folder or a file ending in "
            f"{', '.join(SUFFIXES)}"
        )
    if backend == "auto":
        backend = "openvino" if precision == "bf16" else kind
    if not runs_on(kind, backend):
        raise InputError(f"{path} is a {kind} file; it cannot run on the {backend} backend")
    _require(backend)
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
    return Source(backend, path, preprocessing=spec, labels=_labels(labels), verified=verified,
                  compute="bf16" if precision == "bf16" else None)


def _require(kind: str) -> None:
    if kind == "tensorrt":
        require_tensorrt()
    elif kind in TORCH_BACKENDS:
        require_torch()
    elif kind == "executorch":
        from edge_se.runtime.backends.executorch import require_executorch

        require_executorch()
    elif kind == "openvino":
        require_openvino()


def _from_bundle(root, backend, precision, artifact, preprocessing, labels, verify, defer) -> Source:
    bundle = Bundle.open(root)
    notes: list[str] = []
    engines = [n for n in bundle.artifacts if Path(n).suffix in (".engine", ".plan")]
    chosen = False
    if backend == "auto":
        saved = None if artifact is not None else choice.lookup(bundle.manifest, bundle.artifacts, precision or "fp32", notes)
        if saved is not None and choice.usable(saved.backend):
            backend, artifact, chosen = saved.backend, saved.artifact, True
            notes.append(f"backend {backend} and {artifact}: the bundle's saved choice for this CPU"
                         + (f" (p50 {saved.p50_ms:g} ms)" if saved.p50_ms is not None else ""))
        elif saved is not None:
            notes.append(f"the saved choice {saved.backend} is not usable here (not installed): using the default")
        if chosen:
            pass  # the saved choice named backend and artifact
        elif artifact is not None:
            backend = file_kind(artifact) or "onnxruntime"
        elif precision == "bf16":
            backend = "openvino"
        elif engines and tensorrt_available():
            backend = "tensorrt"
        else:
            backend = "onnxruntime"
            if engines:
                notes.append("bundle has TensorRT engines but TensorRT or a GPU is missing: using ONNX Runtime")
    check_precision(backend, precision)
    _require(backend)
    compute = "bf16" if precision == "bf16" else None
    name = _pick(bundle, backend, "fp32" if compute else precision, notes, artifact)
    record = bundle.artifact(name)
    if not runs_on(file_kind(name) or "", backend):
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
        bundle_root=bundle.root, notes=notes, pending=pending, compute=compute, chosen=chosen,
    )


def _pick(bundle: Bundle, backend: str, precision: str | None, notes: list[str], artifact: str | None = None) -> str:
    if artifact is not None:  # named: it must agree with a precision given too
        have = bundle.record(artifact).precision
        if precision is not None and have != precision:
            raise InputError(
                f"precision {precision} contradicts artifact {artifact}, which is {have or 'of unknown precision'} "
                f"(--precision {precision} with --artifact {artifact}); pass only one of them"
            )
        return artifact
    found = {n: bundle.record(n) for n in bundle.artifacts if runs_on(file_kind(n) or "", backend)}
    if not found:
        have = ", ".join(sorted(bundle.artifacts)) or "none"
        extra = {"tensorrt": " (build one with 'edge-se build BUNDLE --recipe RECIPE' on the device)"}.get(backend, "")
        raise BundleError(f"bundle {bundle.root} has no artifact for the {backend} backend{extra} (it has: {have})")
    if precision is None and backend == "tensorrt":
        for p in _ENGINE_PREFERENCE:
            names = sorted(n for n, r in found.items() if r.precision == p)
            if names:
                if len(found) > 1:
                    notes.append(f"several engines in the bundle: chose {names[0]} ({p}); pass precision= to choose")
                return names[0]
        return sorted(found)[0]
    wanted = precision or "fp32"
    names = sorted(n for n, r in found.items() if r.precision == wanted)
    if not names:
        have = ", ".join(f"{n} ({r.precision})" for n, r in sorted(found.items()))
        raise BundleError(f"bundle {bundle.root} has no {wanted} artifact for the {backend} backend (it has: {have})")
    if len(names) > 1:
        # Two INT8 ONNX files: each backend runs the one measured fastest on it (INT8_FILE_PREFERENCE).
        marks = INT8_FILE_PREFERENCE.get(backend, (".cpu.",))
        prefer = next(([n for n in names if m in n] for m in marks if any(m in n for n in names)), names)
        notes.append(f"several {wanted} artifacts ({', '.join(names)}): chose {prefer[0]} for {backend}")
        names = prefer
    return names[0]

