"""A shared cache of trained ``<attn>_digits`` checkpoints (tests and benchmarks train once).

File name: ``<cache_dir>/<attn>_digits-seed<S>-<hash>.pt`` (+ ``.pt.json`` sidecar), where the
hash covers the training config (epochs, seed, optimizer, data and recipe versions) and the
model's parameter names and shapes, so a changed recipe or architecture trains anew. Two
processes asking at once serialize on an ``flock`` (POSIX) on ``<file>.lock``; the checkpoint
itself is written by an atomic rename, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from edge_se.data.train import TrainConfig, build_digits_model, read_sidecar, train_digits


def default_cache_dir() -> Path:
    """``$EDGE_SE_CACHE`` or ``~/.cache/edge-se``."""
    return Path(os.environ.get("EDGE_SE_CACHE") or Path.home() / ".cache" / "edge-se")


def config_hash(cfg: TrainConfig) -> str:
    """12 hex digits over the config and the model's parameter/buffer names and shapes."""
    model = build_digits_model(cfg.attn_type)
    signature = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    blob = json.dumps({"config": asdict(cfg), "model": signature}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: rely on the atomic rename alone
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_digits_checkpoint(
    attn_type: str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    epochs: int = TrainConfig.epochs,
    seed: int = 0,
) -> Path:
    """Path of a trained ``<attn_type>_digits`` checkpoint, training it on the first call."""
    cfg = TrainConfig(attn_type=attn_type, epochs=epochs, seed=seed)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ckpt = root / f"{cfg.model_name}-seed{seed}-{config_hash(cfg)}.pt"
    if ckpt.is_file() and read_sidecar(ckpt) is not None:
        return ckpt
    with _file_lock(ckpt.with_name(ckpt.name + ".lock")):
        if not (ckpt.is_file() and read_sidecar(ckpt) is not None):
            train_digits(attn_type, ckpt, epochs=epochs, seed=seed)
    return ckpt


__all__ = ["cached_digits_checkpoint", "config_hash", "default_cache_dir"]
