"""A measured backend choice, saved in the bundle by ``edge-se bench --save-choice``.

``manifest.json`` keeps it under ``runtime_choice``: the machine it was measured on (CPU model,
architecture, kernel-relevant instruction sets), the settings, every measured row and, per
precision, the fastest backend and artifact. ``Runtime.load(backend="auto")`` follows it on a
machine with the same fingerprint and ignores it elsewhere (saying so once, in the runtime's
notes). The manifest is untrusted data: an entry is used only when its backend is one the
runtime knows and its artifact is one of the bundle's (and that artifact's sha256 is checked on
load like any other).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from edge_se.manifest import RUNTIME_CHOICE
from edge_se.runtime.cpu import fingerprint

#: backends a saved choice may name (``auto`` never picks TorchScript)
CHOOSABLE = ("onnxruntime", "openvino", "tensorrt")
FORMAT = "edge-se-runtime-choice"


class Choice(NamedTuple):
    """The saved fastest backend and artifact for one precision."""

    backend: str
    artifact: str
    p50_ms: float | None


def build(rows: list[dict[str, Any]], settings: dict[str, Any], measured: str) -> dict[str, Any]:
    """The ``runtime_choice`` record from bench rows (``backend``, ``precision``, ``artifact``,
    ``p50_ms``; rows with an ``error`` are kept and never chosen)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("error") or r.get("backend") not in CHOOSABLE:
            continue
        cur = best.get(r["precision"])
        if cur is None or r["p50_ms"] < cur["p50_ms"]:
            best[r["precision"]] = {"backend": r["backend"], "artifact": r["artifact"], "p50_ms": r["p50_ms"]}
    return {"format": FORMAT, "version": 1, "measured": measured, "machine": fingerprint(), "settings": settings,
            "precisions": best, "rows": rows}


def lookup(manifest: dict[str, Any], artifacts: dict[str, Any], precision: str, notes: list[str]) -> Choice | None:
    """The saved choice for ``precision`` when it was measured on this machine, else None (with a note)."""
    record = manifest.get(RUNTIME_CHOICE)
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("precisions"), dict):
        notes.append(f"manifest field {RUNTIME_CHOICE} is malformed: ignored (re-run 'edge-se bench --save-choice')")
        return None
    here, there = fingerprint(), record.get("machine")
    if there != here:
        cpu = there.get("cpu") if isinstance(there, dict) else None
        notes.append(f"the bundle's saved backend choice was measured on another CPU ({cpu or 'unknown'}; this is "
                     f"{here['cpu']}): ignored; re-run 'edge-se bench --backends all --save-choice' here")
        return None
    entry = record["precisions"].get(precision)
    if entry is None:
        return None
    field = f"{RUNTIME_CHOICE}.precisions.{precision}"
    if not isinstance(entry, dict) or entry.get("backend") not in CHOOSABLE or entry.get("artifact") not in artifacts:
        notes.append(f"manifest field {field} names no backend or artifact of this bundle: ignored")
        return None
    p50 = entry.get("p50_ms")
    return Choice(entry["backend"], entry["artifact"], float(p50) if isinstance(p50, (int, float)) else None)


class Candidate(NamedTuple):
    """One backend x precision x artifact for ``edge-se bench --backends``."""

    backend: str
    precision: str
    artifact: str


def usable(backend: str) -> bool:
    """``backend`` can load here: its package is installed (and, for TensorRT, a GPU is present)."""
    from edge_se.runtime.backends.probe import installed, tensorrt_available

    return tensorrt_available() if backend == "tensorrt" else installed(backend)


def installed_backends() -> list[str]:
    """The choosable backends that can run here (OpenVINO installed, TensorRT with a GPU)."""
    return [b for b in CHOOSABLE if usable(b)]


def candidates(artifacts: dict[str, dict[str, Any]], backends: list[str], precisions: list[str]) -> list[Candidate]:
    """Every (backend, precision, artifact) the bundle can run: each INT8 file on each backend,
    bf16 (the FP32 file) on OpenVINO only and only on a CPU with BF16 instructions, fp16 files on
    ONNX Runtime and TensorRT."""
    from edge_se.errors import InputError
    from edge_se.runtime.cpu import missing_bf16
    from edge_se.runtime.source import check_precision, file_kind, runs_on

    out = []
    for backend in backends:
        for precision in precisions:
            try:
                check_precision(backend, precision)
            except InputError:  # a precision this backend does not run (bf16 off OpenVINO, fp16 on it)
                continue
            if precision == "bf16" and missing_bf16() is not None:  # this CPU has no BF16 instructions
                continue
            want = "fp32" if precision == "bf16" else precision
            for name in sorted(artifacts):
                kind = file_kind(name)
                if kind and runs_on(kind, backend) and artifacts[name].get("precision") == want:
                    out.append(Candidate(backend, precision, name))
    return out
