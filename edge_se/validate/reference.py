"""Rebuild a bundle's PyTorch reference model from its manifest (spec, checkpoint, seed)."""

from __future__ import annotations

from pathlib import Path

from edge_se.bundle import Bundle, sha256_file
from edge_se.errors import BundleError


def reference_module(bundle: Bundle):
    """The eval-mode ``nn.Module`` the bundle was exported from, checked against the manifest.

    The checkpoint (and a user model file) must still exist and hash as recorded; otherwise the
    reference would silently differ from what was exported.
    """
    from edge_se.models.loading import resolve_model

    model = bundle.manifest.get("model") or {}
    spec = model.get("spec")
    if not spec:
        raise BundleError(f"{bundle.root}/manifest.json has no model.spec; re-export the bundle")
    user_file = model.get("user_file")
    if user_file:
        path = Path(user_file["path"])
        if not path.is_file():
            raise BundleError(f"the model file {path} this bundle was exported from is gone; restore it to re-validate")
        if sha256_file(path) != user_file["sha256"]:
            raise BundleError(f"the model file {path} changed since export (sha256 differs); re-export the bundle")
    ckpt = model.get("checkpoint")
    ckpt_path = None
    if ckpt:
        ckpt_path = Path(ckpt["path"])
        if not ckpt_path.is_file():
            raise BundleError(f"the checkpoint {ckpt_path} this bundle was exported from is gone; restore it to re-validate")
        if ckpt.get("sha256") and sha256_file(ckpt_path) != ckpt["sha256"]:
            raise BundleError(f"the checkpoint {ckpt_path} changed since export (sha256 differs); re-export the bundle")
    loaded = resolve_model(spec, checkpoint=ckpt_path, seed=model.get("seed", 0))
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
