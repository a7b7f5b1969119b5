"""INT8 outputs are judged on their distribution (agreement with its uncertainty, SNR), not one worst sample."""

from __future__ import annotations

import numpy as np

from edge_se.reference.numerics import compare_outputs


def _logits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, 10)).astype(np.float32)
    ref[np.arange(n), rng.integers(0, 10, n)] += 4.0  # decisive top-1
    return ref


def test_one_poor_sample_does_not_fail_an_int8_model_that_is_right_overall():
    ref = _logits(64)
    got = ref + np.random.default_rng(1).normal(scale=0.02, size=ref.shape).astype(np.float32)
    worst = ref.argmin(1)[1]
    got[1, worst] += 0.4 * np.linalg.norm(ref[1])  # one sample skewed: cosine ~0.92, its top-1 kept
    r = compare_outputs([ref], [got], "int8", names=["logits"])
    out = r["outputs"][0]
    assert out["cosine_min"] < 0.99  # reported ...
    assert r["passed"], r["reason"]  # ... not decisive


def test_int8_noise_over_every_sample_fails_on_snr():
    ref = _logits(256)
    got = ref + np.random.default_rng(2).normal(scale=ref.std() * 0.3, size=ref.shape).astype(np.float32)
    r = compare_outputs([ref], [got], "int8", names=["logits"])
    assert not r["passed"] and "SNR" in r["reason"]


def test_int8_agreement_significantly_below_the_bound_fails():
    ref = _logits(9000)
    got = ref.copy()
    flip = np.arange(0, 9000, 60)  # 150 of 9,000 decisive samples flipped: 98.3 %, significantly < 99 %
    top = ref[flip].argmax(1)
    got[flip, top] = ref[flip].min(1) - 1.0
    r = compare_outputs([ref], [got], "int8", names=["logits"])
    out = r["outputs"][0]
    assert not r["passed"] and "significantly below 0.99" in r["reason"], r["reason"]
    assert out["top1_agreement_upper"] < 0.99


def test_fp32_tolerance_still_enforces_the_worst_sample():
    ref = _logits(8)
    got = ref.copy()
    got[0] *= -1
    assert not compare_outputs([ref], [got], "fp32", names=["logits"])["passed"]


def test_one_flip_in_64_is_no_evidence_of_agreement_under_99_percent():
    ref = _logits(64)
    got = ref.copy()
    top, second = np.argsort(ref[0])[[-1, -2]]
    got[0, top] = ref[0, second] - 0.5  # 63/64 = 98.4 %
    r = compare_outputs([ref], [got], "int8", names=["logits"])
    assert r["outputs"][0]["top1_agreement"] < 0.99 and r["passed"], r["reason"]


def test_validate_judges_a_quantized_bundle_on_in_distribution_inputs(se_int8_bundle, copy_bundle):
    """What the quantize stage wrote (policy all) passes `edge-se validate`; its results on N(0,1)
    noise, far outside the calibrated ranges, are recorded but not enforced."""
    from edge_se.cli import main
    from edge_se.bundle import Bundle

    bundle = copy_bundle(se_int8_bundle)
    assert main(["-q", "validate", str(bundle.root)]) == 0
    checks = [c for c in Bundle.open(bundle.root).manifest["checks"]
              if c["artifact"].startswith("model.int8") and c["name"].startswith("numerics/")]
    noise = [c for c in checks if c["name"].startswith("numerics/random/")]
    real = [c for c in checks if c["name"].startswith("numerics/real/")]
    assert noise and all(c["enforced"] is False and c["passed"] for c in noise)
    assert real and all(c["passed"] and c.get("enforced", True) for c in real)
    assert all(o["sqnr_db"] >= 15.0 for c in real for o in c["outputs"])


def test_one_flip_in_15_decisive_samples_is_no_evidence_either():
    """Wilson's bound (0.985) called 14/15 significant; the exact bound (0.9966) does not."""
    ref = _logits(15)
    top, second = np.argsort(ref[0])[[-1, -2]]
    ref[0, second] = ref[0, top] - 0.6 * ref[0].std()  # decisive (margin > 0.25 std), cheap to flip
    got = ref.copy()
    got[0, top], got[0, second] = ref[0, second], ref[0, top]  # its top-1 swapped: 14/15 agree
    r = compare_outputs([ref], [got], "int8", names=["logits"])
    assert r["outputs"][0]["top1_agreement"] == 14 / 15
    assert r["outputs"][0]["top1_agreement_upper"] > 0.99 and r["passed"], r["reason"]


def test_the_agreement_bound_is_the_exact_clopper_pearson_bound():
    import math

    from edge_se.reference.metrics import binomial_upper

    # closed forms: with all n or none of n trials failing, P(X <= k) = alpha has an exact solution
    assert binomial_upper(14, 15, 0.95) == _close(0.95 ** (1 / 15))
    assert binomial_upper(0, 10, 0.95) == _close(1 - 0.05 ** (1 / 10))
    assert binomial_upper(10, 10, 0.95) == 1.0
    # k = n - 1: P(X <= n-1) = 1 - p^n; k = 1 of 3: (1-p)^3 + 3p(1-p)^2 = alpha at the bound
    p = binomial_upper(1, 3, 0.9)
    assert math.isclose((1 - p) ** 3 + 3 * p * (1 - p) ** 2, 0.1, rel_tol=1e-9)
    bounds = [binomial_upper(k, 9000, 0.95) for k in (8900, 8950, 8990, 8999)]
    assert bounds == sorted(bounds) and all(k / 9000 < b for k, b in zip((8900, 8950, 8990, 8999), bounds))


def _close(x: float):
    import pytest

    return pytest.approx(x, rel=1e-9)
