"""TorchScript export: trace, freeze, and check the result against eager PyTorch.

TorchScript is deprecated in torch 2.14 (``torch.jit`` warns to switch to ``torch.export``); the
artifact is kept for LibTorch and Torch-TensorRT users. TorchScript files are code-like: load
them only from trusted sources.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge_se.bundle import atomic_path
from edge_se.errors import ExportError


def export_torchscript(module, example, out: Path, check_inputs: list | None = None) -> dict:
    """Trace + freeze ``module`` at ``example``; save to ``out``; check outputs equal eager.

    Returns a check dict (``max_abs`` over the check inputs). Raises ExportError on failure.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
        except Exception as e:  # tracing raises many types; name it and the reason
            raise ExportError(f"TorchScript trace failed: {type(e).__name__}: {_first_line(e)}") from None
        max_abs = 0.0
        with torch.no_grad():
            for x in [example, *(check_inputs or [])]:
                ref = _as_numpy(module(x))
                got = _as_numpy(frozen(x))
                if len(ref) != len(got):
                    raise ExportError("TorchScript module returns a different number of outputs than eager")
                for r, g in zip(ref, got):
                    if r.shape != g.shape:
                        raise ExportError(f"TorchScript output shape {g.shape} != eager {r.shape}")
                    max_abs = max(max_abs, float(np.abs(r - g).max()) if r.size else 0.0)
        with atomic_path(out) as tmp:
            torch.jit.save(frozen, str(tmp))
    # freezing folds BN and may reorder float ops: equality within float32 rounding, not bit-exact
    passed = max_abs <= 1e-4
    return {"name": "torchscript-vs-eager", "passed": passed, "max_abs": max_abs, "rule": "max abs <= 1e-4"}


def _as_numpy(out) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _as_numpy(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _as_numpy(out[k])]
    raise ExportError(f"model output of type {type(out).__name__} is not a tensor, tuple or dict of tensors")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
