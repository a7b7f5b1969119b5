"""INT8 ExecuTorch: ``model.int8.pte`` from the bundle's ``model.pt2`` and the quantize stage's
calibration set (``edge-se quantize --precision int8 --pte``).

ExecuTorch quantizes through PT2E with the XNNPACK quantizer (symmetric per-channel INT8
weights, histogram-observed per-tensor INT8 activations), then lowers to the XNNPACK delegate
(:func:`edge_se.export.pte.export_pte`). The quantizer decides which operators run in INT8 (the
ones XNNPACK has INT8 kernels for); the ONNX files' kept-float decision is not applied to it, and
the record says so. Needs the optional ``executorch`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_se.bundle import Bundle
from edge_se.errors import BundleError
from edge_se.manifest import EXECUTORCH

PTE_INT8_ARTIFACT = "model.int8.pte"
PT2 = "model.pt2"
#: The INT8 program has a static batch of 1 (the runtime runs larger batches one sample at a
#: time). Measured with ExecuTorch 1.5.1: a dynamic-batch INT8 cbam_digits program crashes the
#: process (SIGSEGV, heap corruption) when a batch of 8 follows a batch of 1, whenever an
#: average- and a max-pooled branch are added (CBAM's channel gate); FP32 and SE are unaffected.
STATIC_BATCH = 1


def check_ready(bundle: Bundle) -> dict[str, Any]:
    """Refuse before any calibration work: no ``model.pt2`` (exit 2) or ExecuTorch missing (exit 3).

    Returns the ``model.pt2`` record."""
    from edge_se.runtime.backends.executorch import require_executorch

    if PT2 not in bundle.artifacts:
        reason = ((bundle.manifest.get("format_failures") or {}).get("pt2") or {}).get("reason")
        why = f" (torch.export failed at export: {reason})" if reason else ""
        raise BundleError(f"bundle {bundle.root} has no {PT2}{why}; --pte quantizes the torch.export program: "
                          "re-export with 'edge-se export ... --formats onnx,pt2' or drop --pte")
    require_executorch("the INT8 .pte (--pte)")
    return bundle.artifact(PT2)


def write_int8_pte(bundle: Bundle, calibration: Any, out: Path) -> dict[str, Any]:
    """Quantize ``model.pt2`` at a static batch of :data:`STATIC_BATCH` on ``calibration`` and
    lower it to ``out``; returns the manifest record (without files). The caller has run
    :func:`check_ready` (the quantize stage does, before it calibrates)."""
    from edge_se.export.pte import export_pte
    from edge_se.runtime.backends.torch_export import load_exported_program

    import torch

    rec = bundle.artifact(PT2)
    lo, _ = rec.get("batch_range") or [1, 1]
    if int(lo) > STATIC_BATCH:
        raise BundleError(f"{PT2} of {bundle.root} has no batch 1 (its range starts at {lo}); the INT8 .pte runs "
                          "one sample at a time: re-export with a dynamic batch")
    program = load_exported_program(bundle.verify(PT2))
    item = [int(d) for d in bundle.section("model")["input_shape"][1:]]
    static = torch.export.export(program.module(), (torch.randn(STATIC_BATCH, *item),))
    info = dict(export_pte(static, out, max_batch=STATIC_BATCH, calibration=calibration.batches(STATIC_BATCH)))
    batch_range = info.pop("batch_range")
    info.pop("precision", None)
    return {
        "stage": "quantize", "format": EXECUTORCH, "backend": "executorch", "precision": "int8", "source": PT2,
        "policy": "xnnpack-quantizer", "batch_range": list(batch_range),
        "int8": {"activations": "int8 symmetric per-tensor (histogram observer)",
                 "weights": "int8 symmetric per-channel", "quantizer": "XNNPACKQuantizer (PT2E)",
                 "kept_in_float": "operators without XNNPACK INT8 kernels; the ONNX files' kept-float "
                                  "decision is not applied"},
        "calibration": {"samples": calibration.count, "set_sha256": calibration.sha256},
        "inputs": rec.get("inputs"), "outputs": rec.get("outputs"), "torch": rec.get("torch"),
        **info,
    }


def runner(path: Path, record: dict[str, Any]):
    """``fn(x) -> list[np.ndarray]`` running ``path`` on the executorch backend, as the runtime would."""
    from edge_se.reference.check import torch_format_runner

    return torch_format_runner(path, PTE_INT8_ARTIFACT, record)[0]


__all__ = ["PTE_INT8_ARTIFACT", "check_ready", "runner", "write_int8_pte"]
