"""TorchScript backend (on request only): imports torch, runs on the CPU under inference_mode.

TorchScript files are code: ``torch.jit.load`` runs what the file says. Load only files from a
trusted source (the runtime checks the manifest sha256 first). TorchScript is deprecated in
torch 2.14 (``torch.export`` is its successor); it stays for LibTorch users.
"""

from __future__ import annotations

from edge_se.errors import BundleError, first_line
from edge_se.runtime.backends.torch_module import TorchModuleRunner


class TorchScriptRunner(TorchModuleRunner):
    """Runs a TorchScript module; specs come from the manifest (TorchScript stores none)."""

    name = "torchscript"

    def _load(self):
        try:
            return self._torch.jit.load(str(self.path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as e:
            first = first_line(e)
            raise BundleError(f"torch.jit.load cannot load {self.path}: {first}") from None
