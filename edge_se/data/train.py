"""Train the ``<attn>_digits`` zoo models on scikit-learn's digits (CPU, about a minute).

The checkpoints are what the quantization and validation stages measure INT8 damage on: plain
test accuracy >= 97 %, digits-hard accuracy clearly below it. A checkpoint is a plain
``model.state_dict()`` (``torch.load(weights_only=True)`` reads it), written atomically, with a
JSON sidecar ``<ckpt>.json`` holding the recipe, the accuracies and the training time.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_se.bundle import atomic_path, atomic_write_json, sha256_file, utc_now
from edge_se.data import digits as D
from edge_se.errors import InputError

ATTENTION_TYPES = ("se", "cbam", "bam", "sk", "simam", "eca")
#: Bump when the training recipe changes in a way the config below does not capture.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a digits training run (hashed by the checkpoint cache)."""

    attn_type: str
    epochs: int = 12
    seed: int = 0
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    optimizer: str = "adamw + one-cycle"
    data_version: int = D.DATA_VERSION
    recipe_version: int = RECIPE_VERSION

    @property
    def model_name(self) -> str:
        return f"{self.attn_type}_digits"


def sidecar_path(ckpt: str | os.PathLike[str]) -> Path:
    """The JSON sidecar next to a checkpoint: ``<ckpt>.json``."""
    return Path(f"{os.fspath(ckpt)}.json")


def build_digits_model(attn_type: str):
    """The zoo model ``<attn_type>_digits`` (random init)."""
    if attn_type not in ATTENTION_TYPES:
        raise InputError(f"attention type must be one of {', '.join(ATTENTION_TYPES)}, got {attn_type!r}")
    from edge_se.models.registry import create_model

    return create_model(f"{attn_type}_digits")


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode, no grad) on arrays ``x``, ``y``."""
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])))
            correct += int((logits.argmax(1).numpy() == y[i : i + batch_size]).sum())
    return correct / len(y)


def train_digits(
    attn_type: str,
    out_ckpt: str | os.PathLike[str],
    *,
    epochs: int = TrainConfig.epochs,
    seed: int = 0,
    threads: int = 1,
    model: Any = None,
) -> dict[str, Any]:
    """Train ``<attn_type>_digits`` and save ``out_ckpt`` (state_dict) plus ``<out_ckpt>.json``.

    ``model`` replaces the zoo model (tests use a tiny one); ``threads`` sets torch's intra-op
    threads for the run (restored afterwards). The default is 1: these nets are too small to gain
    from a second thread, and on a shared CPU two threads spent about 7x the CPU time of one
    (eca_digits: 117 s vs 16 s). Returns the sidecar dict.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    cfg = TrainConfig(attn_type=attn_type, epochs=epochs, seed=seed)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        net = model if model is not None else build_digits_model(attn_type)
        x_train, y_train = D.digits_arrays("train")
        x_test, y_test = D.digits_arrays("test")
        rng = np.random.default_rng(seed)
        steps = epochs * int(np.ceil(len(x_train) / cfg.batch_size))
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)

        t0, c0 = time.perf_counter(), time.process_time()
        history = []
        for epoch in range(epochs):
            net.train()
            x_aug = D.augment(x_train, rng)
            order = rng.permutation(len(x_train))
            total = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                xb, yb = torch.from_numpy(x_aug[idx]), torch.from_numpy(y_train[idx])
                loss = F.cross_entropy(net(xb), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            history.append(round(total / len(order), 4))
        train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0

        x_hard, y_hard = D.digits_hard()
        result: dict[str, Any] = {
            "model": cfg.model_name,
            "attn_type": attn_type,
            "custom_model": model is not None,
            "config": asdict(cfg),
            "accuracy": {"test": evaluate(net, x_test, y_test), "digits_hard": evaluate(net, x_hard, y_hard)},
            "n_train": len(y_train), "n_test": len(y_test), "n_hard": len(y_hard),
            "loss_per_epoch": history,
            "train_seconds": round(train_s, 2),
            "train_cpu_seconds": round(cpu_s, 2),
            "threads": torch.get_num_threads(),
            "input_shape": list(D.INPUT_SHAPE),
            "preprocessing": D.DIGITS_PREPROCESS.to_dict(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "created": utc_now(),
        }
        out_ckpt = Path(out_ckpt)
        with atomic_path(out_ckpt) as tmp:
            torch.save(net.state_dict(), tmp)
        result["checkpoint"] = {"path": out_ckpt.name, "sha256": sha256_file(out_ckpt)}
        atomic_write_json(sidecar_path(out_ckpt), result)
        return result
    finally:
        torch.set_num_threads(old_threads)


def read_sidecar(ckpt: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of a checkpoint, or None when it is missing or unreadable."""
    try:
        return json.loads(sidecar_path(ckpt).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


__all__ = ["ATTENTION_TYPES", "TrainConfig", "build_digits_model", "evaluate", "read_sidecar", "sidecar_path", "train_digits"]
