"""Rebuild a bundle's PyTorch reference model from its manifest (spec, checkpoint, seed).

A manifest is untrusted data: nothing it names is ever imported. Zoo, ``torchvision:`` and
``timm:`` specs are looked up in their registries only. A bundle exported from a user file
(``path/to/file.py:factory``) is rebuilt only from a file the user names again on the command line
(:class:`ReferenceOptions.model`, checked against the sha256 the manifest recorded), or, with
``trust_bundle_code``, by importing the file the manifest names after saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edge_se import progress
from edge_se.bundle import Bundle, sha256_file
from edge_se.errors import BundleError, UntrustedCodeError
from edge_se.manifest import ONNX_REFERENCE_FILE, ONNX_SOURCE

TRUST_FLAG = "--trust-bundle-code"
MODEL_FLAG = "--model"


@dataclass(frozen=True)
class ReferenceOptions:
    """How the user lets a reference be rebuilt: their own model file, their own checkpoint, trust."""

    model: str | None = None  # path/to/file.py:factory, given again by the user
    checkpoint: str | Path | None = None  # overrides the path the manifest recorded
    trust_bundle_code: bool = False  # import the user file the manifest names
    module: Any = None  # the nn.Module itself (Python API), checked against the recorded weights


def _user_file_spec(bundle: Bundle, spec: str, factory: str | None, options: ReferenceOptions) -> str:
    """The ``file.py:factory`` spec to import, checked against the recorded sha256, or a refusal."""
    from edge_se.models.loading import parse_spec

    recorded = (bundle.manifest.get("model") or {}).get("user_file") or {}
    want = recorded.get("sha256") if isinstance(recorded, dict) else None
    where = bundle.root / "manifest.json"
    if options.model:
        given = parse_spec(options.model)
        if given.source != "file":
            raise BundleError(f"{MODEL_FLAG} {options.model!r}: expected path/to/file.py:factory, the file this bundle was exported from")
        path = Path(given.name).expanduser()
        if not path.is_file():
            raise BundleError(f"{MODEL_FLAG} {options.model!r}: {path} does not exist")
        if not isinstance(want, str) or sha256_file(path) != want:
            raise BundleError(
                f"{MODEL_FLAG} {path} is not the file this bundle was exported from (its sha256 differs from "
                f"model.user_file.sha256 in {where}); pass the exact file, or re-export the bundle"
            )
        return options.model
    if options.trust_bundle_code:
        path = Path(parse_spec(spec).name)
        if want and (not path.is_file() or sha256_file(path) != want):
            raise BundleError(f"the model file {path} this bundle names is gone or changed since export (sha256 differs); "
                              f"pass {MODEL_FLAG} FILE.py:factory or re-export the bundle")
        progress.info(f"{TRUST_FLAG}: importing {spec} as the manifest names it (its code runs on this machine)")
        return spec
    raise UntrustedCodeError(
        f"{where} names the user model file {spec!r}; edge-se never imports code a manifest names. "
        f"Pass {MODEL_FLAG} FILE.py:{factory or 'factory'} (checked against the sha256 recorded at export) "
        f"or {TRUST_FLAG} if you trust this bundle"
    )


def is_onnx_import(bundle: Bundle) -> bool:
    """True for a bundle made from an ONNX file: it has no PyTorch model to rebuild."""
    return (bundle.manifest.get("model") or {}).get("source") == ONNX_SOURCE


def onnx_reference_file(bundle: Bundle) -> Path:
    """The imported ONNX file kept in an ONNX-import bundle, sha256-checked."""
    ref = (bundle.manifest.get("model") or {}).get("reference")
    entry = ref.get("entry") if isinstance(ref, dict) else None
    if not isinstance(entry, dict):
        raise BundleError(f"{bundle.root}/manifest.json: model.reference.entry must record the imported ONNX file "
                          f"({ONNX_REFERENCE_FILE}) with its sha256; re-import the ONNX file")
    return bundle.verify_file(entry)


def reference_runner(bundle: Bundle, options: ReferenceOptions | None = None) -> tuple[Callable[[Any], list], str]:
    """``(fn(x) -> list of outputs, description)``: the bundle's FP32 reference.

    PyTorch rebuilt from the manifest; for a bundle imported from ONNX, ONNX Runtime FP32 on the
    file as imported (a fixed-batch file runs in chunks of its batch).
    """
    from edge_se.reference.check import ort_runner, torch_runner

    if is_onnx_import(bundle):
        return ort_runner(onnx_reference_file(bundle)), f"ONNX Runtime FP32 ({ONNX_REFERENCE_FILE}, the imported file)"
    return torch_runner(reference_module(bundle, options)), f"PyTorch ({(bundle.manifest.get('model') or {}).get('spec')})"


def reference_module(bundle: Bundle, options: ReferenceOptions | None = None):
    """The eval-mode ``nn.Module`` the bundle was exported from, checked against the manifest.

    The checkpoint (and a user model file) must still exist and hash as recorded; otherwise the
    reference would silently differ from what was exported.
    """
    from edge_se.models.loading import MODULE_SOURCE, check_model_options, parse_spec, resolve_model

    options = options or ReferenceOptions()
    if is_onnx_import(bundle):
        raise BundleError(f"{bundle.root} was made from an ONNX file: it has no PyTorch model (its reference is "
                          f"ONNX Runtime FP32 on {ONNX_REFERENCE_FILE})")
    model = bundle.manifest.get("model") or {}
    if not isinstance(model, dict):
        raise BundleError(f"{bundle.root}/manifest.json: 'model' must be a table; re-export the bundle")
    if options.module is not None:
        return _given_module(bundle, options.module, model.get("state_sha256"))
    if model.get("source") == MODULE_SOURCE:
        raise BundleError(f"{bundle.root} was exported from an nn.Module passed from Python; pass that module again "
                          "(model=... in the Python API) to validate against PyTorch")
    spec = model.get("spec")
    if not spec or not isinstance(spec, str):
        raise BundleError(f"{bundle.root}/manifest.json has no model.spec; re-export the bundle")
    parsed = parse_spec(spec)
    if parsed.source == "file":
        spec = _user_file_spec(bundle, spec, parsed.factory, options)
    ckpt_path = _checkpoint(bundle, model.get("checkpoint"), options)
    seed = model.get("seed", 0)
    options_ = check_model_options(model.get("options"), f"{bundle.root}/manifest.json: model.options")
    loaded = resolve_model(spec, checkpoint=ckpt_path, seed=seed if isinstance(seed, int) else 0, **options_)
    module = loaded.module.eval()
    want = model.get("state_sha256")
    if want and state_fingerprint(module) != want:
        raise BundleError(
            f"the PyTorch model rebuilt from {spec!r} has different weights than the one exported into "
            f"{bundle.root} (the model code or its random init changed since edge-se "
            f"{bundle.manifest.get('edge_se_version')}); re-export the bundle, or export with --checkpoint "
            "so the reference can be rebuilt exactly"
        )
    return module


def _given_module(bundle: Bundle, module: Any, want: object):
    """The module the caller passed, refused when its weights are not the exported ones."""
    if isinstance(want, str) and state_fingerprint(module) != want:
        raise BundleError(f"the nn.Module passed has different weights than the one exported into {bundle.root} "
                          "(model.state_sha256 differs); pass the exported module, or re-export")
    return module.eval()


def _checkpoint(bundle: Bundle, ckpt: object, options: ReferenceOptions) -> Path | None:
    """The checkpoint to load (weights only): the user's ``--checkpoint`` or the recorded path, sha256-checked."""
    if not ckpt:
        if options.checkpoint is not None:
            raise BundleError(f"--checkpoint given, but {bundle.root} was exported without one (random init)")
        return None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("sha256"), str):
        raise BundleError(f"{bundle.root}/manifest.json: model.checkpoint must record path and sha256; re-export the bundle")
    path = Path(options.checkpoint if options.checkpoint is not None else str(ckpt.get("path")))
    if not path.is_file():
        raise BundleError(f"the checkpoint {path} this bundle was exported from is gone; restore it or pass --checkpoint FILE")
    if sha256_file(path) != ckpt["sha256"]:
        raise BundleError(f"the checkpoint {path} is not the one this bundle was exported from (sha256 differs); "
                          "pass the exact file with --checkpoint, or re-export the bundle")
    return path


def state_fingerprint(module) -> str:
    """sha256 over the module's state_dict (names, shapes, dtypes, bytes): identifies the weights."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
