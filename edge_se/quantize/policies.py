"""Precision policies: which nodes stay in float when a model goes to INT8.

* ``all``: everything ONNX Runtime / TensorRT can run in INT8 is quantized.
* ``keep-gates``: every attention gate subgraph (pool, FC/conv, Sigmoid/Softmax and the
  rescaling Mul) stays float. Gates are found by graph pattern
  (:func:`edge_se.quantize.patterns.find_attention_gates`), so this works on any model.
* ``auto`` (default): INT8 first, float only where it is needed and affordable. The fully
  quantized model is measured against the :class:`Budget`: top-1 agreement with FP32
  (``min_agreement``, %) and, when the evaluation set has labels, the task-accuracy drop
  (``max_drop``, points), each judged with its statistical uncertainty: on a set too small to
  resolve the budget a miss counts only when it is *significant* (one-sided bounds at
  ``confidence``), never because 64 images cannot resolve 0.03 %; a set large enough is held to
  the measured values. If it is missed, each candidate
  block (every gate as one block, every other weighted layer with the ops after it up to the next
  one) cheap enough to fit in the float allowance (``1 - min_int8`` of the net's
  multiply-accumulates) is kept float **alone** and ranked by the loss it removes per
  multiply-accumulate; the shortest prefix of that ranking, inside the allowance, that meets the
  budget is found by bisection. When no prefix meets it, the least lossy one measured is kept and
  the decision says so (``budget_met: false``): ``auto`` never trades the INT8 floor for accuracy.
  Each INT8 file is measured with its own builder: they quantize different tensors.

Every decision records ``int8_mac_share``: the fraction of the model's multiply-accumulates
(Conv/Gemm/MatMul, per sample) that run in INT8.
"""

from __future__ import annotations

from edge_se.bundle import owned_tempdir
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, TYPE_CHECKING

import numpy as np

from edge_se.errors import InputError
from edge_se.quantize.metrics import run_onnx
from edge_se.reference.metrics import logit_metrics

if TYPE_CHECKING:
    import onnx

POLICIES = ("all", "keep-gates", "auto")
DEFAULT_MAX_DROP = 0.1
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Block:
    """A named group of nodes a policy keeps in float or quantizes as one."""

    name: str
    kind: str
    nodes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "nodes": list(self.nodes)}


@dataclass
class PolicyDecision:
    """What a policy chose: the float-kept blocks/nodes and, for ``auto``, the evidence."""

    policy: str
    kept_blocks: list[Block] = field(default_factory=list)
    gates_found: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    int8_mac_share: float | None = None

    @property
    def kept_nodes(self) -> list[str]:
        seen: dict[str, None] = {}
        for b in self.kept_blocks:
            for n in b.nodes:
                seen.setdefault(n, None)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "gates_found": self.gates_found,
            "int8_mac_share": self.int8_mac_share,
            "kept_in_float": [b.to_dict() for b in self.kept_blocks],
            "kept_nodes": self.kept_nodes,
            **self.details,
        }


def gate_blocks(model: onnx.ModelProto) -> list[Block]:
    """The attention gates of ``model`` as blocks (pattern search on the graph)."""
    from edge_se.quantize.patterns import find_attention_gates

    return [Block(name=g.name, kind=g.kind, nodes=list(g.nodes)) for g in find_attention_gates(model)]


def candidate_blocks(model: onnx.ModelProto) -> list[Block]:
    """``auto``'s candidates: every gate, then one block per weighted layer (Conv/Gemm/MatMul)
    holding the layer and the ops after it up to the next weighted layer (its activation, SiLU's
    Sigmoid+Mul, residual Add, pooling), so the blocks together cover every quantizable node."""
    blocks = gate_blocks(model)
    in_gates = {n for b in blocks for n in b.nodes}
    producer = {o: n for n in model.graph.node for o in n.output}
    owner: dict[str, str] = {}
    layers: dict[str, Block] = {}
    head = Block(name="input", kind="layer", nodes=[])
    for n in model.graph.node:  # graph order is topological
        if not n.name or n.name in in_gates or n.op_type == "Constant":
            continue
        if n.op_type in WEIGHTED_OPS:
            owner[n.name] = n.name
            layers[n.name] = Block(name=n.name, kind="layer", nodes=[n.name])
            continue
        group = _upstream_group(n, producer, owner, in_gates)
        if not group:  # no weighted layer upstream (yet): the input block
            head.nodes.append(n.name)
            owner[n.name] = ""
        else:
            owner[n.name] = group
            layers[group].nodes.append(n.name)
    return blocks + ([head] if head.nodes else []) + list(layers.values())


def _upstream_group(node, producer, owner: dict[str, str], in_gates: set[str]) -> str | None:
    """The block of the nearest owned producer, looking through gate nodes (x * gate -> x's block)."""
    stack, seen = [node], set()
    while stack:
        cur = stack.pop(0)
        for t in cur.input:
            p = producer.get(t)
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            if p.name in owner and owner[p.name]:
                return owner[p.name]
            if p.name in in_gates:
                stack.append(p)
    return None


def weighted_macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates per sample of every named Conv/ConvTranspose/Gemm/MatMul node."""
    import onnx

    from edge_se.quantize.patterns import node_attr

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type not in WEIGHTED_OPS or not n.name or len(n.input) < 2:
            continue
        out, w = shapes.get(n.output[0]), shapes.get(n.input[1])
        if not out or not w or any(d is None for d in out[1:]) or any(d is None for d in w):
            continue
        if n.op_type == "ConvTranspose":  # every input element meets C_out/g * kh * kw weights
            x = shapes.get(n.input[0])
            if x and all(d is not None for d in x[1:]):
                macs[n.name] = int(np.prod(x[1:])) * int(np.prod(w[1:]))
            continue
        if n.op_type == "Conv":
            per_out = int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            per_out = int(w[1] if node_attr(n, "transB", 0) else w[0])
        else:
            per_out = int(w[-2])
        macs[n.name] = int(np.prod(out[1:])) * per_out
    return macs


def int8_mac_share(macs: dict[str, int], kept_nodes: list[str]) -> float | None:
    """Fraction of the weighted-op MACs (:func:`weighted_macs`) not kept in float (``None`` when
    shapes are unknown)."""
    total = sum(macs.values())
    if total == 0:
        return None
    kept = set(kept_nodes)
    return round(sum(v for k, v in macs.items() if k not in kept) / total, 4)


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise InputError(f"unknown precision policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return policy


#: builds an INT8 model: (fp32 path, out path, nodes to keep float) -> None
Builder = Callable[[Path, Path, List[str]], None]  # typing.List: evaluated at import (Python 3.8)


def decide(
    policy: str,
    model_path: str | Path,
    *,
    builder: Builder | None = None,
    x: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    budget: Budget | None = None,
    ref: np.ndarray | None = None,
) -> PolicyDecision:
    """Apply ``policy`` to the FP32 model; ``auto`` needs ``builder`` and selection inputs ``x``
    (``labels`` optional; ``ref``: the FP32 outputs on ``x`` when already computed) and meets
    ``budget`` (default :class:`Budget`)."""
    import onnx

    check_policy(policy)
    model = onnx.load(str(model_path), load_external_data=False)
    gates = gate_blocks(model)
    macs = weighted_macs(model)
    if policy == "all":
        decision = PolicyDecision("all", [], gates_found=len(gates))
    elif policy == "keep-gates":
        decision = PolicyDecision("keep-gates", gates, gates_found=len(gates))
    else:
        if builder is None or x is None:
            raise InputError("policy 'auto' needs calibration data to measure block sensitivity")
        budget = (budget or Budget()).check()
        ref = run_onnx(model_path, x) if ref is None else ref
        decision = _auto(model, Path(model_path), builder, x, ref, labels, budget, len(gates), macs)
    decision.int8_mac_share = int8_mac_share(macs, decision.kept_nodes)
    return decision


DEFAULT_MIN_AGREEMENT = 99.7
DEFAULT_MIN_INT8 = 0.95
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Budget:
    """What ``auto`` must meet: top-1 agreement with FP32 >= ``min_agreement`` (%), accuracy drop
    <= ``max_drop`` points (needs labels), with >= ``min_int8`` of the MACs in INT8. On a set too
    small to resolve the budget (:meth:`samples_to_resolve`) a miss counts only when it is
    significant at ``confidence`` (one-sided); a set that resolves it is held to the measured values."""

    max_drop: float = DEFAULT_MAX_DROP
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    min_int8: float = DEFAULT_MIN_INT8
    confidence: float = DEFAULT_CONFIDENCE

    def check(self) -> "Budget":
        for name, value, lo, hi in (("--max-drop", self.max_drop, 0.0, 100.0),
                                    ("--min-agreement", self.min_agreement, 0.0, 100.0),
                                    ("--min-int8", self.min_int8, 0.0, 1.0)):
            if not (np.isfinite(value) and lo <= value <= hi):
                raise InputError(f"{name} must be a number between {lo:g} and {hi:g}, got {value}")
        if not 0.5 <= self.confidence < 1.0:
            raise InputError(f"confidence must be in [0.5, 1), got {self.confidence}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"max_drop": self.max_drop, "min_agreement": self.min_agreement, "min_int8": self.min_int8,
                "confidence": self.confidence}

    def samples_to_resolve(self, use_labels: bool) -> int:
        """Samples at which a model without a single flip is significantly inside the tightest
        budgeted allowance (the "rule of three" at 95 %: ``-ln(1 - confidence) / allowance``)."""
        allowances = [(100.0 - self.min_agreement) / 100.0] + ([self.max_drop / 100.0] if use_labels else [])
        a = min(allowances)
        return 0 if a <= 0 else int(np.ceil(-np.log(1.0 - self.confidence) / a))


def judge(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None, budget: Budget) -> dict[str, Any]:
    """Metrics of ``got`` against ``ref`` and the budget verdict (``met``: no significant miss)."""
    from statistics import NormalDist

    from edge_se.reference.metrics import binomial_upper

    m = logit_metrics(ref, got, labels)
    n = len(ref)
    m["agreement_upper"] = 100.0 * binomial_upper(round(m["agreement"] * n / 100.0), n, budget.confidence)
    # a set that can resolve the budget holds the measured values to it; a smaller one only
    # counts a miss it can show to be significant
    resolves = n >= budget.samples_to_resolve(labels is not None)
    m["resolves_budget"] = resolves
    misses = []
    if m["agreement_upper"] < budget.min_agreement or (resolves and m["agreement"] < budget.min_agreement):
        misses.append(f"agreement {m['agreement']:.2f} % (upper bound {m['agreement_upper']:.2f} %) "
                      f"< {budget.min_agreement:g} %")
    if labels is not None:
        d = (ref.argmax(1) == labels).astype(np.float64) - (got.argmax(1) == labels)
        se = 100.0 * float(d.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0
        m["accuracy_drop_lower"] = m["accuracy_drop"] - NormalDist().inv_cdf(budget.confidence) * se
        if m["accuracy_drop_lower"] > budget.max_drop or (resolves and m["accuracy_drop"] > budget.max_drop):
            misses.append(f"accuracy drop {m['accuracy_drop']:.3f} points (lower bound "
                          f"{m['accuracy_drop_lower']:.3f}) > {budget.max_drop:g}")
    m["loss"] = max(100.0 - m["agreement"], m.get("accuracy_drop", 0.0))
    m["met"] = not misses
    m["misses"] = misses
    return m


def _auto(
    model: onnx.ModelProto,
    model_path: Path,
    builder: Builder,
    x: np.ndarray,
    ref: np.ndarray,
    labels: np.ndarray | None,
    budget: Budget,
    gates_found: int,
    macs: dict[str, int],
) -> PolicyDecision:
    blocks = candidate_blocks(model)
    total = max(sum(macs.values()), 1)
    cost = [sum(macs.get(n, 0) for n in b.nodes) for b in blocks]
    allowance = (1.0 - budget.min_int8) * total
    steps: list[dict[str, Any]] = []
    sensitivity: list[dict[str, Any]] = []
    with owned_tempdir("edge-se-auto-") as tmp:
        out = Path(tmp) / "probe.onnx"

        def step(keep: list[int]) -> dict[str, Any]:
            """Build with ``keep`` float, judge it on every sample, record the step."""
            builder(model_path, out, [n for i in keep for n in blocks[i].nodes])
            got = run_onnx(out, x)
            m = {**judge(ref, got, labels, budget), "got": got}
            steps.append({"kept_count": len(keep), "kept": [blocks[i].name for i in keep], "met": m["met"],
                          "agreement": m["agreement"], "accuracy_drop": m.get("accuracy_drop"),
                          "sqnr_db": m["sqnr_db"], "int8_mac_share": round(1 - sum(cost[i] for i in keep) / total, 4)})
            return m

        base = step([])
        kept: list[int] = []
        final = base
        probes: dict[str, Any] = {}
        if not base["met"]:
            eligible = [i for i in range(len(blocks)) if cost[i] <= allowance]
            sub = _at_risk(ref, base["got"])
            base_sub = judge(ref[sub], base["got"][sub], None if labels is None else labels[sub], budget)

            def cut(probed: list[int]) -> list[int]:
                chosen, used = [], 0
                for i in _rank_gain(sensitivity, probed, total):  # the ranking cut to the float allowance
                    if used + cost[i] <= allowance:
                        chosen.append(i)
                        used += cost[i]
                return chosen

            # Probes in rounds, gates first (candidate order): once the loss the probed blocks remove
            # alone adds up to the fully quantized file's, their ranking is built and judged; a
            # configuration that meets the budget ends the probing (early exit), else the next round.
            probed: list[int] = []
            chosen: list[int] = []
            results: dict[int, dict[str, Any]] = {0: base}
            tried = 0.0
            for start in range(0, len(eligible), PROBE_ROUND):
                for i in eligible[start:start + PROBE_ROUND]:  # on the samples whose decision INT8 can change
                    builder(model_path, out, blocks[i].nodes)
                    m = judge(ref[sub], run_onnx(out, x[sub]), None if labels is None else labels[sub], budget)
                    removed = (base_sub["loss"] - m["loss"]) * len(sub) / len(x)
                    sensitivity.append({"block": blocks[i].name, "kind": blocks[i].kind, "macs": cost[i],
                                        "loss_removed": removed, "sqnr_db": m["sqnr_db"]})
                    probed.append(i)
                last = len(probed) == len(eligible)
                gained = sum(max(e["loss_removed"], 0.0) for e in sensitivity)
                if not last and (gained < base["loss"] or gained <= tried):
                    continue
                tried = gained
                ranked = cut(probed)
                if ranked:
                    chosen = ranked
                    results = {0: base, len(chosen): step(chosen)}
                    if results[len(chosen)]["met"]:
                        break
            probes = {"eligible": len(eligible), "probed": len(probed), "early_exit": len(probed) < len(eligible)}
            lo, hi = 0, len(chosen)
            if results[hi]["met"]:
                while hi - lo > 1:  # the shortest prefix that meets the budget (more float taken not to hurt)
                    mid = (lo + hi) // 2
                    results[mid] = step(chosen[:mid])
                    lo, hi = (lo, mid) if results[mid]["met"] else (mid, hi)
                count = hi
            else:  # nothing inside the allowance meets it: the least lossy configuration measured
                count = min(results, key=lambda c: (results[c]["loss"], -results[c]["sqnr_db"]))
            kept, final = chosen[:count], results[count]
    details = {
        "budget": budget.to_dict(),
        "budget_met": final["met"],
        "budget_misses": final["misses"],
        "budget_metric": "top-1 agreement with FP32" + (" and accuracy drop on labels" if labels is not None else "")
        + f"; on a set too small to resolve it a miss counts only when significant at {budget.confidence:g}",
        "measured": {k: final.get(k) for k in ("samples", "agreement", "agreement_upper", "accuracy_drop",
                                               "accuracy_drop_lower", "sqnr_db")},
        "samples_to_resolve": budget.samples_to_resolve(labels is not None),
        "float_allowance_macs": int(allowance),
        "sensitivity": sensitivity,
        "probes": probes,
        "steps": steps,
        "measured_on": f"{len(x)} samples, with the INT8 file's own builder",
    }
    return PolicyDecision("auto", [blocks[i] for i in kept], gates_found=gates_found, details=details)


#: the sensitivity probes run on at most this many samples: those nearest to a changed decision
AT_RISK_SAMPLES = 2048
#: blocks probed per round before ``auto`` checks whether the probed ones already repair the file
PROBE_ROUND = 8


def _at_risk(ref: np.ndarray, got: np.ndarray, limit: int = AT_RISK_SAMPLES) -> np.ndarray:
    """Indices of the samples whose top-1 INT8 can change: every sample the fully quantized model
    already flips, then those with the smallest FP32 margin (top-1 minus runner-up logit) in units
    of the margin noise that model showed. Samples far outside every decision boundary cannot
    flip when a block goes back to float, so the probes skip them (their loss is counted as the
    fully quantized model's)."""
    from edge_se.reference.metrics import margin_noise

    if len(ref) <= limit:
        return np.arange(len(ref))
    top, margin, sigma = margin_noise(ref, got)
    z = margin / max(sigma, 1e-12)
    z[got.argmax(1) != top] = -np.inf  # the flipped samples first
    return np.sort(np.argsort(z, kind="stable")[:limit])


def _rank_gain(sensitivity: list[dict[str, Any]], eligible: list[int], total: int) -> list[int]:
    """Eligible block indices by the loss each removes when kept float alone, per MAC it costs
    (blocks that remove nothing are left out); ties by the SQNR reached."""
    floor = max(total * 1e-4, 1.0)  # a block without MACs still costs something (a float kernel, Q/DQ)
    gains = [(s["loss_removed"] / max(s["macs"], floor), s["sqnr_db"], i)
             for s, i in zip(sensitivity, eligible) if s["loss_removed"] > 0]
    return [i for _, _, i in sorted(gains, key=lambda g: (-g[0], -g[1]))]


__all__ = ["Block", "Budget", "DEFAULT_MAX_DROP", "DEFAULT_MIN_AGREEMENT", "DEFAULT_MIN_INT8", "judge", "POLICIES", "PolicyDecision", "candidate_blocks", "check_policy", "decide", "gate_blocks",
           "int8_mac_share", "weighted_macs"]
