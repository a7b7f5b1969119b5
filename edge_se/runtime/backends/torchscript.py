"""TorchScript backend (on request only): imports torch, runs on the CPU under inference_mode.

TorchScript files are code: ``torch.jit.load`` runs what the file says. Load only files from a
trusted source (the runtime checks the manifest sha256 first). TorchScript is deprecated in
torch 2.14 (``torch.export`` is its successor); it stays for LibTorch users.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_se.errors import BundleError
from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import require_torch


class TorchScriptRunner:
    """Runs a TorchScript module; specs come from the manifest (TorchScript stores none)."""

    name = "torchscript"

    def __init__(self, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int | None = None):
        require_torch()
        import torch

        self._torch = torch
        self.path = Path(path)
        self.threads = threads
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BundleError(f"torch.jit.load cannot load {self.path}: {first}") from None
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        if isinstance(out, dict):
            out = list(out.values())
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return [t.detach().cpu().numpy() for t in out]

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "version": self._torch.__version__,
            "providers": ["cpu"],
            "threads": self._torch.get_num_threads(),
        }

    def close(self) -> None:
        self.module = None
