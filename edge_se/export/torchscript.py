"""TorchScript export: trace, freeze, and check the result against eager PyTorch.

TorchScript is deprecated in torch 2.14 (``torch.jit`` warns to switch to ``torch.export``); the
artifact is kept for LibTorch and Torch-TensorRT users. TorchScript files are code-like: load
them only from trusted sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_se.bundle import atomic_path
from edge_se.errors import ExportError, first_line
from edge_se.export.tracer import collect_tracer_warnings
from edge_se.reference.numerics import compare_outputs
from edge_se.reference.check import as_numpy


def export_torchscript(module, example, out: Path, check_inputs: list | None = None,
                       tracer_warnings: list[dict] | None = None) -> dict:
    """Trace + freeze ``module`` at ``example``; save to ``out``; check outputs equal eager.

    Returns a check dict (``max_abs`` over the check inputs). Raises ExportError on failure.
    Tracer warnings (edge_se/export/tracer.py) are appended to ``tracer_warnings`` when given;
    judging them is the caller's business.
    """
    import torch

    with collect_tracer_warnings(tracer_warnings):
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
        except Exception as e:  # tracing raises many types; name it and the reason
            raise ExportError(f"TorchScript trace failed: {type(e).__name__}: {first_line(e, 300)}") from None
        refs: list[list[np.ndarray]] = []
        gots: list[list[np.ndarray]] = []
        with torch.no_grad():
            for x in [example, *(check_inputs or [])]:
                refs.append(as_numpy(module(x)))
                gots.append(as_numpy(frozen(x)))
        with atomic_path(out) as tmp:
            torch.jit.save(frozen, str(tmp))
    # freezing folds BN and may reorder float ops: equal within the FP32 tolerance, not bit-exact
    results = [compare_outputs(r, g, "fp32") for r, g in zip(refs, gots)]
    failed = [r["reason"] for r in results if not r["passed"]]
    max_abs = max((o.get("max_abs", 0.0) for r in results for o in r["outputs"]), default=0.0)
    return {"name": "torchscript-vs-eager", "passed": not failed, "max_abs": max_abs,
            "reason": "; ".join(failed), "rule": "FP32 tolerance (edge_se/reference/tolerances.py)"}


