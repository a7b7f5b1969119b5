"""Numerical tolerances per precision: the one place they are defined.

The rule, applied to every output tensor of a model against the PyTorch FP32 reference:

* **max abs error**: ``max|got - ref| <= atol + rtol * max|ref|`` (``rtol`` scales with the
  output's own range, so logits of size 30 and probabilities of size 1 get the same relative
  budget). Not enforced for INT8 (quantization error is expected to be large element-wise).
* **cosine similarity** of the flattened tensors, per sample: the minimum over samples must be
  ``>= min_cosine``. INT8 reports it and does not enforce it (``min_cosine=None``): one worst
  sample's direction says little about a quantized model, whose error is a distribution.
* **signal-to-noise ratio** of the whole output (``10 log10(sum ref^2 / sum (got-ref)^2)``), INT8
  only: ``>= min_sqnr_db``. It judges the error over every sample at once.
* **top-1 agreement** (2-D ``N x classes`` outputs only): over *decisive* samples, the fraction
  whose argmax equals the reference's must be ``>= min_top1``. A sample is decisive when the
  reference's top-1 minus top-2 margin exceeds ``decisive_margin`` x the sample's logit standard
  deviation: a near-tie in the reference says nothing about the exported model. With no decisive
  sample the check is reported as not applicable. With ``top1_confidence`` set (INT8), the rule
  fails only when the agreement is *significantly* below ``min_top1``: when the exact one-sided
  upper (Clopper-Pearson) bound of the counted agreement at that confidence is below it. On 64
  samples one flip (98.4 %) is not evidence of an agreement under 99 %, nor is one in 15; on 9,000
  samples 98.9 % is.

A check passes when every enforced rule passes for every output. Max relative error
(``|got-ref| / max(|ref|, 1e-6)``) is reported but never enforced: it explodes near zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge_se.errors import InputError


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail thresholds for one precision (see the module docstring for the rule)."""

    precision: str
    atol: float | None
    rtol: float | None
    min_cosine: float | None
    min_top1: float
    decisive_margin: float
    min_sqnr_db: float | None = None
    top1_confidence: float | None = None

    def abs_bound(self, ref_max_abs: float) -> float | None:
        """The max-abs-error budget for an output whose largest magnitude is ``ref_max_abs``."""
        if self.atol is None or self.rtol is None:
            return None
        return self.atol + self.rtol * ref_max_abs

    def to_dict(self) -> dict:
        return asdict(self)


TOLERANCES: dict[str, Tolerance] = {
    # FP32 export/runtime differences are kernel reordering only.
    "fp32": Tolerance("fp32", atol=1e-4, rtol=1e-3, min_cosine=0.99999, min_top1=1.0, decisive_margin=0.01),
    # FP16 has ~3 decimal digits; NVIDIA's guidance is ~1e-3 abs/rel per op, more over depth.
    "fp16": Tolerance("fp16", atol=1e-2, rtol=1e-2, min_cosine=0.9995, min_top1=0.99, decisive_margin=0.05),
    # BF16 (OpenVINO on CPUs with AVX512_BF16/AMX) keeps FP32's range with 8 mantissa bits; it is
    # held to the FP16 tolerance (FP16-class), which it meets on the zoo (~4e-3 relative error).
    "bf16": Tolerance("bf16", atol=1e-2, rtol=1e-2, min_cosine=0.9995, min_top1=0.99, decisive_margin=0.05),
    # INT8: judged on the distribution - decisions (top-1, with their uncertainty) and the output's
    # SNR - never element-wise or by one worst sample. Full INT8 of the digits nets reaches 27-39 dB
    # on digits-hard; 15 dB is an error of 18 % of the logits' RMS, which a broken scale or a
    # float model in disguise would not pass (one badly flipped sample among 64 costs about 17 dB).
    "int8": Tolerance("int8", atol=None, rtol=None, min_cosine=None, min_top1=0.99, decisive_margin=0.25,
                      min_sqnr_db=15.0, top1_confidence=0.95),
}


def tolerance_for(precision: str) -> Tolerance:
    """The tolerance of ``precision`` ('fp32', 'fp16', 'int8')."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(TOLERANCES)}") from None
