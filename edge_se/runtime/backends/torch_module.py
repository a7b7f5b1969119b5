"""What the PyTorch-file backends share: load once, run under ``inference_mode`` on the CPU.

Subclasses (TorchScript, torch.export, AOTInductor) only say how a file becomes a callable.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_se.errors import InputError
from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import require_torch


class TorchModuleRunner:
    """Runs a callable loaded from a PyTorch file; tensor specs come from the manifest."""

    name = "torch"
    #: True when the loaded callable may not be entered by two threads at once
    serial = False

    def __init__(self, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int | None = None):
        require_torch()
        import torch

        self._torch = torch
        self.path = Path(path)
        self.threads = threads
        if threads is not None:
            torch.set_num_threads(threads)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._lock = threading.Lock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            self.module: Any = self._load()

    def _load(self) -> Any:
        raise NotImplementedError

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        for spec in self.inputs:
            check_batch(spec, len(feeds[spec.name]), self.name)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in self.inputs]
        with torch.inference_mode():
            if self.serial:
                with self._lock:
                    out = self.module(*args)
            else:
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


def check_batch(spec: TensorSpec, n: int, backend: str) -> None:
    """Refuse a batch outside ``spec.batch_range`` in one line, before the file's own code sees it."""
    lo, hi = spec.batch_range
    if spec.static_batch is None and (n < lo or (hi is not None and n > hi)):
        raise InputError(
            f"input '{spec.name}': batch {n} is outside the {backend} artifact's batch range [{lo}, {hi}]; pass "
            "batches within it (the runtime's predict splits larger ones) or re-export with a larger --max-batch"
        )
