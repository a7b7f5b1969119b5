"""Compare model outputs with the PyTorch reference under the per-precision tolerances."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from edge_se.reference.metrics import binomial_upper, sqnr_db
from edge_se.reference.tolerances import Tolerance, tolerance_for


def per_sample_cosine(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Cosine per sample: 1 when both are all zeros, 0 when only one is (a dead gate is not perfect)."""
    r = ref.reshape(ref.shape[0], -1).astype(np.float64)
    g = got.reshape(got.shape[0], -1).astype(np.float64)
    num = (r * g).sum(1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1)
    both_zero = den == 0
    cos = np.where(both_zero, 1.0, num / np.where(both_zero, 1.0, den))
    # one side all-zero and the other not: cosine 0
    cos = np.where((den == 0) & ((np.abs(r).sum(1) > 0) | (np.abs(g).sum(1) > 0)), 0.0, cos)
    return cos


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> dict[str, Any]:
    """Metrics and verdict for one output tensor (batch first)."""
    ref = np.asarray(ref, dtype=np.float32)
    got = np.asarray(got, dtype=np.float32)
    result: dict[str, Any] = {"output": name, "shape": list(ref.shape)}
    if ref.shape != got.shape:
        result.update(passed=False, reason=f"output '{name}': shape {list(got.shape)} != reference {list(ref.shape)}")
        return result
    if not np.all(np.isfinite(got)):
        bad = int((~np.isfinite(got)).sum())
        result.update(passed=False, reason=f"output '{name}': {bad} non-finite values (NaN/Inf)")
        return result
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    ref_max = float(np.abs(ref).max()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-6)).max()) if diff.size else 0.0
    cos = per_sample_cosine(ref, got) if ref.ndim >= 1 and ref.shape[0] else np.ones(1)
    bound = tol.abs_bound(ref_max)
    result.update(
        max_abs=max_abs,
        max_rel=max_rel,
        ref_max_abs=ref_max,
        abs_bound=bound,
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        sqnr_db=sqnr_db(ref, got),
    )
    failures = []
    if bound is not None and max_abs > bound:
        failures.append(
            f"max abs error {max_abs:.3g} > {bound:.3g} (atol {tol.atol:g} + rtol {tol.rtol:g} x max|ref| {ref_max:.3g})"
        )
    if tol.min_cosine is not None and cos.min() < tol.min_cosine:
        failures.append(f"min cosine {cos.min():.6f} < {tol.min_cosine}")
    if tol.min_sqnr_db is not None and result["sqnr_db"] < tol.min_sqnr_db:
        failures.append(f"SNR {result['sqnr_db']:.1f} dB < {tol.min_sqnr_db:g} dB")
    if ref.ndim == 2 and ref.shape[1] > 1:
        top1 = top1_agreement(ref, got, tol.decisive_margin)
        result.update(top1)
        agree = top1["top1_agreement"]
        if agree is not None and tol.top1_confidence is not None:
            upper = binomial_upper(round(agree * top1["decisive"]), top1["decisive"], tol.top1_confidence)
            result["top1_agreement_upper"] = upper
            if upper < tol.min_top1:
                failures.append(
                    f"top-1 agreement {agree:.4f} over {top1['decisive']} decisive samples is significantly below "
                    f"{tol.min_top1} (upper {100 * tol.top1_confidence:g} % bound {upper:.4f})"
                )
        elif agree is not None and agree < tol.min_top1:
            failures.append(f"top-1 agreement {agree:.4f} < {tol.min_top1} over {top1['decisive']} decisive samples")
    result["passed"] = not failures
    result["reason"] = f"output '{name}': " + "; ".join(failures) if failures else ""
    return result


def top1_agreement(ref: np.ndarray, got: np.ndarray, decisive_margin: float) -> dict[str, Any]:
    """Top-1 agreement over all samples and over decisive ones (see tolerances)."""
    ref_top = ref.argmax(1)
    got_top = got.argmax(1)
    srt = np.sort(ref, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    decisive = margin > decisive_margin * np.maximum(ref.std(1), 1e-12)
    agree = ref_top == got_top
    return {
        "top1_agreement_all": float(agree.mean()),
        "top1_agreement": float(agree[decisive].mean()) if decisive.any() else None,
        "decisive": int(decisive.sum()),
        "samples": int(ref.shape[0]),
    }


def compare_outputs(
    ref: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    got: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    precision: str,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compare every output; ``passed`` is True only when all outputs pass.

    ``ref``/``got`` are dicts keyed by output name or sequences in the same order (``names``
    then gives the names).
    """
    tol = tolerance_for(precision)
    if isinstance(ref, Mapping):
        names = list(ref)
        ref_list = [ref[n] for n in names]
        got_list = [got[n] for n in names] if isinstance(got, Mapping) else list(got)
    else:
        ref_list, got_list = list(ref), list(got)
        names = list(names) if names is not None else [f"output{i}" for i in range(len(ref_list))]
    if len(ref_list) != len(got_list):
        return {
            "precision": precision,
            "tolerance": tol.to_dict(),
            "outputs": [],
            "passed": False,
            "reason": f"model has {len(got_list)} outputs, the reference has {len(ref_list)}",
        }
    outputs = [compare_output(n, r, g, tol) for n, r, g in zip(names, ref_list, got_list)]
    failed = [o["reason"] for o in outputs if not o["passed"]]
    return {
        "precision": precision,
        "tolerance": tol.to_dict(),
        "outputs": outputs,
        "passed": not failed,
        "reason": " | ".join(failed),
    }
