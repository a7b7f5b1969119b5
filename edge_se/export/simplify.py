"""Graph simplification (onnxslim by default, onnxsim optional), checked against the original.

The simplified graph is accepted only when ONNX Runtime gives the same outputs as on the
unsimplified graph for seeded inputs (FP32 tolerance); otherwise the unsimplified graph is kept
and the reason is recorded. ``benchmarks/simplifier_compare.py`` measures both on the zoo.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_se.errors import InputError, missing_extra
from edge_se.reference.numerics import compare_outputs

SIMPLIFIERS = ("onnxslim", "onnxsim", "none")


def _run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def simplify_model(model, feeds: dict[str, np.ndarray], simplifier: str = "onnxslim") -> tuple[Any, dict]:
    """Simplify ``model``; return (model to keep, record for the manifest)."""
    if simplifier not in SIMPLIFIERS:
        raise InputError(f"unknown simplifier {simplifier!r}; expected one of {', '.join(SIMPLIFIERS)}")
    record: dict[str, Any] = {"name": simplifier, "nodes_before": len(model.graph.node)}
    if simplifier == "none":
        record.update(used=False, reason="disabled by --simplifier none")
        return model, record
    t0 = time.perf_counter()
    try:
        if simplifier == "onnxslim":
            try:
                import onnxslim
            except ImportError:
                raise missing_extra("onnxslim", "export", "ONNX simplification") from None
            simplified = onnxslim.slim(model)
        else:
            try:
                import onnxsim
            except ImportError:
                raise missing_extra("onnxsim", "onnxsim", "ONNX simplification with onnxsim") from None
            simplified, ok = onnxsim.simplify(model)
            if not ok:
                raise RuntimeError("onnxsim's own check failed")
    except ImportError:
        raise
    except Exception as e:  # a simplifier bug must not lose the export: keep the original graph
        record.update(used=False, reason=f"{simplifier} failed: {type(e).__name__}: {str(e)[:200]}")
        return model, record
    record["seconds"] = round(time.perf_counter() - t0, 3)
    ref = _run(model, feeds)
    got = _run(simplified, feeds)
    check = compare_outputs(ref, got, "fp32")
    record["check"] = {"passed": check["passed"], "max_abs": max(o.get("max_abs", 0.0) for o in check["outputs"])}
    if not check["passed"]:
        record.update(used=False, reason=f"simplified graph differs from the original: {check['reason']}")
        return model, record
    record.update(used=True, nodes_after=len(simplified.graph.node))
    return simplified, record
