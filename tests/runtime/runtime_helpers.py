"""Constants and helpers shared by the runtime tests (imported by name: tests/ is no package)."""

from __future__ import annotations

import subprocess
import sys

INPUT_SHAPE = (1, 3, 64, 64)
N_CLASSES = 10
LABELS = [f"class_{i}" for i in range(N_CLASSES)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``edge-se`` in a subprocess (the real entry point)."""
    return subprocess.run([sys.executable, "-m", "edge_se.cli", *args], capture_output=True, text=True, timeout=120)


def torch_logits(net, x):
    """PyTorch eager outputs of ``net`` for a NumPy batch."""
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()
