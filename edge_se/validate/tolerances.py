"""Numerical tolerances per precision: the one place they are defined.

The rule, applied to every output tensor of a model against the PyTorch FP32 reference:

* **max abs error**: ``max|got - ref| <= atol + rtol * max|ref|`` (``rtol`` scales with the
  output's own range, so logits of size 30 and probabilities of size 1 get the same relative
  budget). Not enforced for INT8 (quantization error is expected to be large element-wise).
* **cosine similarity** of the flattened tensors, per sample: the minimum over samples must be
  ``>= min_cosine``.
* **top-1 agreement** (2-D ``N x classes`` outputs only): over *decisive* samples, the fraction
  whose argmax equals the reference's must be ``>= min_top1``. A sample is decisive when the
  reference's top-1 minus top-2 margin exceeds ``decisive_margin`` x the sample's logit standard
  deviation: a near-tie in the reference says nothing about the exported model. With no decisive
  sample the check is reported as not applicable.

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
    min_cosine: float
    min_top1: float
    decisive_margin: float

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
    # INT8: judged by direction (cosine) and decisions (top-1), never element-wise.
    "int8": Tolerance("int8", atol=None, rtol=None, min_cosine=0.99, min_top1=0.99, decisive_margin=0.25),
}


def tolerance_for(precision: str) -> Tolerance:
    """The tolerance of ``precision`` ('fp32', 'fp16', 'int8')."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(TOLERANCES)}") from None
