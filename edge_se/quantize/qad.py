"""Quantization-aware distillation (``edge-se quantize ... --finetune``): label-free repair of INT8.

The INT8 file itself is the student (:class:`~edge_se.quantize.onnx_torch.QDQModule`: its Q/DQ
placement, scales, zero points, saturation and integer biases, interpreted in PyTorch with
straight-through rounding); the FP32 ONNX model is the teacher. On the calibration images (no
labels), under mild augmentation (shifts of up to ``SHIFT`` pixels), the student's weights and
biases are trained to reproduce the teacher's logits (mean squared error normalised by the
logits' power, i.e. the logit SQNR that the deployed metrics report), with Adam and a cosine
learning-rate decay. Scales and zero points stay fixed, so the ranges recorded by the stage, the
TensorRT calibration cache and the Q/DQ placement keep holding. The trained values are written
back into the same initializers: the file written is the model trained.

The report records the time, the steps, the loss, and the **simulation-vs-deployed SQNR**: the
student's logits in PyTorch against ONNX Runtime's (fused integer kernels) on the same inputs,
before and after training, which says whether the training optimized the model that runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_se import progress
from edge_se.quantize.metrics import run_onnx
from edge_se.reference.metrics import sqnr_db

DEFAULT_EPOCHS = 8
DEFAULT_LR = 0.1  # in quantization steps (grid units) per Adam step
DEFAULT_SCALE_LR = 0.005  # learned activation scales, in log units per step
BATCH = 64
SHIFT = 2
SIM_SAMPLES = 256


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by up to ``SHIFT`` pixels in each spatial direction (wrapping)."""
    if x.ndim != 4:
        return x
    out = np.empty_like(x)
    dy = rng.integers(-SHIFT, SHIFT + 1, len(x))
    dx = rng.integers(-SHIFT, SHIFT + 1, len(x))
    for i in range(len(x)):
        out[i] = np.roll(x[i], (int(dy[i]), int(dx[i])), axis=(1, 2))
    return out


def simulated(module: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The student's logits (PyTorch simulation) on ``x``."""
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))).numpy()
                               for i in range(0, len(x), batch)])


def finetune(int8_path: Path, fp32_path: Path, x: np.ndarray, out_path: Path, *, epochs: int = DEFAULT_EPOCHS,
             lr: float = DEFAULT_LR, learn_scales: bool = False, scale_lr: float = DEFAULT_SCALE_LR,
             check_x: np.ndarray | None = None, check_ref: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """Distil ``int8_path`` towards ``fp32_path`` on the unlabeled inputs ``x``; write ``out_path``.

    The trained file is kept only when its deployed logit SQNR against FP32 on ``check_x`` (default:
    ``x`` itself, unaugmented; ``check_ref``: FP32's outputs on it, when already computed) is
    higher than the original's; otherwise, or when the loss stops
    being finite, ``out_path`` is the original file and ``applied`` is False with the reason.
    """
    import shutil

    import onnx
    import torch

    from edge_se.quantize.onnx_torch import QDQModule

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    student = QDQModule(onnx.load(str(int8_path)), learn_scales=learn_scales)
    probe = x[:SIM_SAMPLES]
    sim_before = sqnr_db(run_onnx(int8_path, probe), simulated(student, probe))
    params = student.parameters()
    groups = [{"params": params, "lr": lr}]
    if student.scale_parameters():
        groups.append({"params": student.scale_parameters(), "lr": scale_lr})
    opt = torch.optim.Adam(groups)
    steps = epochs * int(np.ceil(len(x) / BATCH))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    losses: list[float] = []
    stopped = ""
    with progress.stage(f"Fine-tuning {Path(int8_path).name} ({epochs} epochs, {len(x)} images, {len(params)} tensors)"):
        for _ in range(epochs):
            if stopped:
                break
            xa = _augment(x, rng)
            teacher = run_onnx(fp32_path, xa)
            order = rng.permutation(len(x))
            for i in range(0, len(x), BATCH):
                idx = order[i:i + BATCH]
                target = torch.from_numpy(teacher[idx])
                got = student(torch.from_numpy(np.ascontiguousarray(xa[idx], dtype=np.float32)))
                loss = ((got - target) ** 2).mean() / (target**2).mean().clamp_min(1e-12)
                if not torch.isfinite(loss):
                    stopped = f"the loss became non-finite at step {len(losses) + 1}"
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
    onnx.save_model(student.write_back(), str(out_path))
    sim_after = sqnr_db(run_onnx(out_path, probe), simulated(QDQModule(onnx.load(str(out_path)), trainable=False), probe))
    cx = x if check_x is None else check_x
    ref = run_onnx(fp32_path, cx) if check_ref is None else check_ref
    before, after = sqnr_db(ref, run_onnx(int8_path, cx)), sqnr_db(ref, run_onnx(out_path, cx))
    reason = stopped or ("" if np.isfinite(after) and after > before else
                         f"the trained file's logit SQNR ({after:.1f} dB) is not above the original's ({before:.1f} dB)")
    if reason:  # never publish a worse model than the one the stage built
        shutil.copyfile(int8_path, out_path)
        progress.info(f"[yellow]note[/yellow]: fine-tuning {Path(int8_path).name} kept the original file: {reason}")
    first = float(np.mean(losses[: max(1, len(losses) // 10)])) if losses else float("nan")
    last = float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else float("nan")
    return {"epochs": epochs, "steps": steps, "lr": lr, "images": int(len(x)), "augmentation": f"shifts up to {SHIFT} px",
            "loss": "MSE of the logits / their power (teacher: FP32 ONNX)", "loss_first": first, "loss_last": last,
            "trained_tensors": len(params), "learned_scales": len(student.scale_parameters()), "seconds": round(time.perf_counter() - t0, 1),
            "sim_vs_deployed_sqnr_db": {"before": sim_before, "after": sim_after, "on": f"{len(probe)} calibration images"},
            "check_sqnr_db": {"before": before, "after": after, "on": f"{len(cx)} samples"},
            "applied": not reason, "reason": reason}


__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "finetune", "simulated"]
