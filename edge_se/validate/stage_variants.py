"""Files the matrix measures that the bundle lacks, made by the quantize stage itself.

Each one is what ``edge-se quantize BUNDLE --precision fp16`` or ``--precision int8 --policy P``
would publish, with the stage's defaults (range method, weight rounding, budget, reduce-range
choice) and its checks: the public :func:`~edge_se.quantize.stage.quantize_fp16` /
:func:`~edge_se.quantize.stage.quantize_int8` run on a scratch subset of the bundle (its FP32
ONNX only, hard-linked; :meth:`~edge_se.bundle.Bundle.subset`), INT8 on the matrix's calibration
data, and the file they publish (the CPU file for INT8) is measured. The bundle is never written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_se.errors import EdgeSEError
from edge_se.manifest import PrecisionDecision


@dataclass
class Variant:
    """One artifact the matrix measures: the bundle's own, or one the stage made (or refused to make)."""

    precision: str
    policy: str
    path: Path | None  # None when the file could not be made (see error)
    created: bool
    artifact: str
    info: dict[str, Any] = field(default_factory=dict)
    #: why the file could not be made (the quantize stage refused); the row reports it as failed
    error: str | None = None


def kept_info(decision: PrecisionDecision | None) -> dict[str, Any]:
    """Report fields of a file's precision decision (as the manifest records it)."""
    return {"kept_in_float": list(decision.kept_blocks) if decision else [],
            "int8_mac_share": decision.int8_mac_share if decision else None}


def _tensor_set(folder: Path, name: str, x: np.ndarray, y: np.ndarray | None, spec) -> Any:
    """A calibration set (the stage's own reader) from preprocessed arrays, via a ``.npz``."""
    from edge_se.calibration.build import calibration_from

    path = folder / f"{name}.npz"
    arrays = {"x": np.ascontiguousarray(x, dtype=np.float32)}
    if y is not None:
        arrays["labels"] = np.asarray(y, dtype=np.int64)
    np.savez(path, **arrays)
    return calibration_from(path, out_cache=folder, preprocessing=spec)


def made_by_stage(bundle, fp16: bool, int8_policies: Sequence[str], data, out_dir: Path, reference: Any = None
                  ) -> tuple[list[Variant], list[str]]:
    """Run the quantize stage on a scratch subset of ``bundle``: FP16 when ``fp16``, and INT8 once
    per policy in ``int8_policies`` (calibrated on ``data.calib_x``, ``auto`` measuring its budget
    on ``data.select_x`` when the matrix has held-out data).

    The files land in ``out_dir`` (``model.fp16.onnx``, ``model.int8.cpu.<policy>.onnx``). A run
    the stage refuses (a failed check, bad data) gets its error, not an exception, so the others
    are still measured. Returns the outcomes and the notes for the report.
    """
    from edge_se import progress
    from edge_se.bundle import owned_tempdir
    from edge_se.quantize.stage import CPU_ARTIFACT, FP16_ARTIFACT, quantize_fp16, quantize_int8

    jobs = ([("fp16", "-")] if fp16 else []) + [("int8", p) for p in int8_policies]
    made: list[Variant] = []
    methods: dict[str, str] = {}
    with owned_tempdir(".made-", out_dir) as tmp:
        calib = selection = None
        if int8_policies:
            spec = bundle.preprocessing()
            calib = _tensor_set(tmp, "calibration", data.calib_x, data.calib_y, spec)
            if data.select_x is not None:
                selection = _tensor_set(tmp, "selection", data.select_x, data.select_y, spec)
        for precision, policy in jobs:
            name = FP16_ARTIFACT if precision == "fp16" else f"model.int8.cpu.{policy}.onnx"
            flags = "--precision fp16" if precision == "fp16" else f"--precision int8 --policy {policy}"
            scratch = bundle.subset(tmp / f"bundle-{precision}-{policy}", ["model.onnx"])
            try:
                with progress.stage(f"edge-se quantize {flags} (for this report)"):
                    if precision == "fp16":
                        quantize_fp16(scratch, reference=reference)
                    else:
                        quantize_int8(scratch, calib, policy=policy, evaluation=selection, reference=reference)
            except EdgeSEError as e:
                made.append(Variant(precision, policy, None, True, name, error=f"edge-se quantize {flags} refused: {e}"))
                continue
            published = FP16_ARTIFACT if precision == "fp16" else CPU_ARTIFACT
            rec = scratch.record(published)
            path = out_dir / name
            os.replace(scratch.verify(published), path)
            if precision == "fp16":
                info = {"fp32_op_types": (rec.raw.get("fp16") or {}).get("fp32_op_types")}
            else:
                methods[policy] = str((rec.raw.get("calibration") or {}).get("method"))
                info = kept_info(rec.decision)
            made.append(Variant(precision, policy, path, True, name, info))
    notes = []
    if fp16:
        notes.append(f"{FP16_ARTIFACT} was not in the bundle: made here by the quantize stage (its FP16 converter "
                     "and checks)")
    if int8_policies:
        chosen = ", ".join(f"{p}: {m} ranges" for p, m in methods.items()) or "none published"
        on = "the calibration set itself" if data.select_x is None else "held-out data"
        notes.append(f"INT8 files for policies {', '.join(int8_policies)} were not in the bundle: made here by the "
                     f"quantize stage with its defaults ({chosen}), calibrated on {data.calib_description}; "
                     f"auto measures its budget on {on}")
    return made, notes


__all__ = ["Variant", "kept_info", "made_by_stage"]
