"""Per-attention-block fidelity: how far each gate of a deployed model is from PyTorch's.

For a deployed ONNX model (FP32, FP16 or INT8, QDQ or QOperator) this module

1. finds every attention gate by graph pattern (:mod:`edge_se.quantize.patterns`);
2. writes a **debug copy** of the model (never touching the deployed file) in which each gate
   tensor, and the feature map it rescales, are extra float32 outputs named
   ``edge_se.gate/<block>`` and ``edge_se.gate_in/<block>``;
3. runs it on ONNX Runtime and compares each gate with the PyTorch module's gate (captured with
   a forward hook on the module named by the graph's scope, e.g. ``layer1.0.se.gate``):
   cosine, max/mean abs error, top-k channel overlap, SK branch argmax agreement, sigmoid
   saturation rates;
4. computes each block's **local error**: the deployed gate against the FP32 ONNX gate subgraph
   fed with the *deployed* model's own block input. Errors that enter upstream and propagate
   are thereby removed, so the block with the largest local error is the one that loses the
   precision (``worst``).

The gate tensor compared is the value the rescaling Mul actually consumes: in QDQ graphs the
output of the Q/DQ pair after the Sigmoid, in FP16 graphs the FP16 value (cast to float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge_se.errors import InputError
from edge_se.quantize.patterns import GateBlock, find_attention_gates
from edge_se.reference.numerics import per_sample_cosine

GATE_PREFIX = "edge_se.gate/"
INPUT_PREFIX = "edge_se.gate_in/"
#: a gate value within this distance of 0 or 1 counts as saturated
SATURATION_EPS = 0.01
#: top-k channel overlap uses k = ceil(C * TOPK_FRACTION)
TOPK_FRACTION = 0.125
#: the metric that ranks blocks (the worst block has the largest)
RANK_BY = "local_mean_abs"
#: below this ranking value no block is named worst (FP32 kernels differ by ~1e-8)
NO_LOSS = 1e-6


@dataclass
class DebugModel:
    """A debug copy of a model with gate tensors as extra outputs."""

    path: Path
    blocks: list[GateBlock]
    gate_outputs: dict[str, str] = field(default_factory=dict)  # block name -> output name
    input_outputs: dict[str, str] = field(default_factory=dict)  # block name -> output name
    model_outputs: list[str] = field(default_factory=list)


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for t in n.input:
            if t:
                out.setdefault(t, []).append(n)
    return out


def effective_gate_tensor(model: onnx.ModelProto, block: GateBlock, consumers=None) -> str:
    """The tensor the rescaling Mul consumes for ``block``: the gate after any Q/DQ pair or Cast."""
    consumers = consumers if consumers is not None else _consumers(model)
    t = block.gate_output
    for _ in range(4):
        nxt = None
        for c in consumers.get(t, ()):
            if c.op_type == "QuantizeLinear":
                dq = [d for d in consumers.get(c.output[0], ()) if d.op_type == "DequantizeLinear"]
                if dq:
                    nxt = dq[0].output[0]
                    break
            elif c.op_type == "Cast":
                nxt = c.output[0]
                break
        if nxt is None:
            return t
        t = nxt
    return t


def _as_float(tensor: str, out_name: str, quant: tuple[str, str] | None) -> onnx.NodeProto:
    """A node turning ``tensor`` into float32 ``out_name``: DequantizeLinear for QOperator tensors, else Cast."""
    if quant is not None:
        return helper.make_node("DequantizeLinear", [tensor, quant[0], quant[1]], [out_name], name=f"{out_name}/dq")
    return helper.make_node("Cast", [tensor], [out_name], to=TensorProto.FLOAT, name=f"{out_name}/cast")


def _input_quant(model: onnx.ModelProto, block: GateBlock) -> tuple[str, str] | None:
    """(scale, zero point) of the scaled input when the rescaling op is a QOperator QLinearMul."""
    for n in model.graph.node:
        if n.name == block.rescale_nodes[0] and n.op_type == "QLinearMul":
            pos = 0 if n.input[0] == block.scaled_input else 3
            return n.input[pos + 1], n.input[pos + 2]
    return None


def make_debug_copy(model_path: str | Path, out_path: str | Path, blocks: Sequence[GateBlock] | None = None) -> DebugModel:
    """Write a copy of ``model_path`` whose gates (and gate inputs) are extra float32 outputs.

    The deployed file is only read. External data is loaded and the copy is saved as one file
    (with a ``.data`` file beside it when over 2 GB).
    """
    model_path, out_path = Path(model_path), Path(out_path)
    model = onnx.load(str(model_path))  # loads external data from the model's folder
    blocks = list(blocks) if blocks is not None else find_attention_gates(model)
    consumers = _consumers(model)
    dbg = DebugModel(path=out_path, blocks=blocks, model_outputs=[o.name for o in model.graph.output])
    for b in blocks:
        gate_t = effective_gate_tensor(model, b, consumers)
        quant = b.gate_output_quant if gate_t == b.gate_output else None
        for prefix, tensor, q, table in (
            (GATE_PREFIX, gate_t, quant, dbg.gate_outputs),
            (INPUT_PREFIX, b.scaled_input, _input_quant(model, b), dbg.input_outputs),
        ):
            name = prefix + b.name
            model.graph.node.append(_as_float(tensor, name, q))
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            table[b.name] = name
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() < 2**31 - 1:
        onnx.save_model(model, str(out_path))
    else:
        onnx.save_model(model, str(out_path), save_as_external_data=True, location=out_path.name + ".data")
    return dbg


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run_chunks(sess, feeds_fn, n: int, batch: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(0, n, batch):
        outs = sess.run(list(names), feeds_fn(i, min(n, i + batch)))
        for k, v in zip(names, outs):
            parts[k].append(np.asarray(v, dtype=np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def run_debug_model(dbg: DebugModel, x: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Model outputs and every ``edge_se.gate*/`` tensor for input ``x`` (first input only)."""
    sess = _session(dbg.path)
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    names = [o.name for o in sess.get_outputs()]
    return _run_chunks(sess, lambda a, b: {inp.name: x[a:b].astype(dtype)}, len(x), batch, names)


def torch_gates(module, x: np.ndarray, scopes: Mapping[str, str | None], batch: int = 16) -> dict[str, np.ndarray | None]:
    """PyTorch gate tensors, by block name, hooked on the module at each block's scope.

    A scope that is not a submodule (a functional sigmoid) gives ``None`` for that block.
    """
    import torch

    named = dict(module.named_modules())
    captured: dict[str, list[np.ndarray]] = {}
    hooks = []
    for block, scope in scopes.items():
        mod = named.get(scope) if scope else None
        if mod is None:
            continue
        captured[block] = []

        def hook(_m, _inp, out, _b=block):
            captured[_b].append(out.detach().float().cpu().numpy())

        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return {b: (np.concatenate(captured[b]) if captured.get(b) else None) for b in scopes}


def cut_subgraph(model: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[onnx.ModelProto | None, str]:
    """The nodes computing ``outputs`` from ``inputs`` (plus constants) as a model of their own.

    Returns ``(None, reason)`` when an output also needs another graph input.
    """
    producer = {t: n for n in model.graph.node for t in n.output if t}
    inits = {t.name: t for t in model.graph.initializer}
    graph_inputs = {i.name for i in model.graph.input} - set(inits)
    stop = set(inputs)
    keep: dict[int, onnx.NodeProto] = {}
    need_inits: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen or t in stop or not t:
            continue
        seen.add(t)
        if t in inits:
            need_inits.add(t)
            continue
        if t in graph_inputs:
            return None, f"{t!r} (a model input) is needed besides the block inputs"
        node = producer.get(t)
        if node is None:
            return None, f"no node produces {t!r}"
        keep[id(node)] = node
        stack.extend(node.input)
    order = [n for n in model.graph.node if id(n) in keep]
    graph = helper.make_graph(
        order,
        "edge_se_gate_subgraphs",
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in inputs],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in outputs],
        [inits[t] for t in sorted(need_inits)],
    )
    sub = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return sub, ""


def local_reference_gates(
    fp32_path: str | Path, fp32_blocks: Sequence[GateBlock], inputs: Mapping[str, np.ndarray], workdir: str | Path,
    batch: int = 16,
) -> tuple[dict[str, np.ndarray], str | None]:
    """FP32 gates recomputed from given block inputs: the gate subgraphs cut out of the FP32 model.

    ``inputs`` maps block name -> that block's input (the deployed model's). Returns the gates
    by block name and a reason when the subgraphs could not be extracted (then empty).
    """
    wanted = [b for b in fp32_blocks if b.name in inputs]
    if not wanted:
        return {}, None
    model = onnx.load(str(fp32_path))
    in_names = list(dict.fromkeys(b.scaled_input for b in wanted))
    out_names = [b.gate_output for b in wanted]
    sub, why = cut_subgraph(model, in_names, out_names)
    if sub is None:
        return {}, f"could not cut the gate subgraphs out of {Path(fp32_path).name}: {why}"
    path = Path(workdir) / "gate_subgraphs.fp32.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(sub, str(path))
    sess = _session(path)
    feed_of = {b.scaled_input: inputs[b.name] for b in wanted}
    graph_inputs = [i.name for i in sess.get_inputs()]
    n = len(next(iter(inputs.values())))
    out = _run_chunks(sess, lambda a, b_: {k: feed_of[k][a:b_] for k in graph_inputs}, n, batch, out_names)
    return {b.name: out[b.gate_output] for b in wanted}, None


def _saturation(g: np.ndarray) -> float:
    return float(np.mean((g <= SATURATION_EPS) | (g >= 1 - SATURATION_EPS)))


def _topk_overlap(ref: np.ndarray, got: np.ndarray) -> tuple[float | None, int | None]:
    """Mean overlap of the top-k channels (by gate value averaged over space), k = C/8."""
    if ref.ndim < 2 or ref.shape[1] < 2:
        return None, None
    c = ref.shape[1]
    k = max(1, math.ceil(c * TOPK_FRACTION))
    r = ref.reshape(len(ref), c, -1).mean(2)
    g = got.reshape(len(got), c, -1).mean(2)
    top_r = np.argsort(-r, axis=1, kind="stable")[:, :k]
    top_g = np.argsort(-g, axis=1, kind="stable")[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_r, top_g)]
    return float(np.mean(overlap)), k


def gate_metrics(ref: np.ndarray, got: np.ndarray, kind: str) -> dict[str, Any]:
    """Fidelity of one gate tensor against its reference (batch first)."""
    if ref.shape != got.shape:
        if ref.size != got.size:
            return {"error": f"gate shape {list(got.shape)} != reference {list(ref.shape)}"}
        got = got.reshape(ref.shape)
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    cos = per_sample_cosine(ref, got)
    out: dict[str, Any] = {
        "shape": list(ref.shape),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "saturation_ref": _saturation(ref),
        "saturation": _saturation(got),
    }
    if kind == "sk":
        out["sk_argmax_agreement"] = float(np.mean(ref.argmax(1) == got.argmax(1)))
        out["topk_overlap"], out["topk_k"] = None, None
    else:
        out["topk_overlap"], out["topk_k"] = _topk_overlap(ref, got)
    return out


def attention_fidelity(
    model_path: str | Path,
    x: np.ndarray,
    workdir: str | Path,
    *,
    module=None,
    reference_onnx: str | Path | None = None,
    batch: int = 16,
    torch_reference: Mapping[str, np.ndarray | None] | None = None,
) -> dict[str, Any]:
    """Per-block gate fidelity of the ONNX model ``model_path`` on inputs ``x``.

    ``module``: the PyTorch reference (its gates are hooked), or ``torch_reference``: gates
    already captured (by block name), to share one PyTorch run across many artifacts.
    ``reference_onnx``: the FP32 ONNX model for the local errors (``None``: no local errors).
    Returns ``{"blocks": [...], "worst": name | None, "rank_by": ..., "notes": [...]}``.
    """
    workdir = Path(workdir)
    x = check_inputs(x)
    dbg = make_debug_copy(model_path, workdir / (Path(model_path).stem + ".debug.onnx"))
    notes: list[str] = []
    if not dbg.blocks:
        return {"blocks": [], "worst": None, "rank_by": RANK_BY, "notes": ["no attention gate found in the graph"]}
    outs = run_debug_model(dbg, x, batch)
    if torch_reference is None and module is not None:
        torch_reference = torch_gates(module, x, {b.name: b.scope for b in dbg.blocks}, batch)
    torch_reference = torch_reference or {}
    local: dict[str, np.ndarray] = {}
    if reference_onnx is not None:
        ref_blocks = {b.name: b for b in find_attention_gates(onnx.load(str(reference_onnx), load_external_data=False))}
        missing = [b.name for b in dbg.blocks if b.name not in ref_blocks]
        if missing:
            notes.append(f"blocks not found in the FP32 reference graph (no local error): {', '.join(missing)}")
        inputs = {b.name: outs[dbg.input_outputs[b.name]] for b in dbg.blocks if b.name in ref_blocks}
        local, why = local_reference_gates(reference_onnx, list(ref_blocks.values()), inputs, workdir, batch)
        if why:
            notes.append(why)
    rows = []
    for b in dbg.blocks:
        got = outs[dbg.gate_outputs[b.name]]
        row: dict[str, Any] = {"block": b.name, "kind": b.kind, "scope": b.scope, "gate_op": b.gate_op}
        ref = torch_reference.get(b.name)
        if ref is not None:
            row.update(gate_metrics(ref, got, b.kind))
        else:
            row["error"] = f"no PyTorch module at scope {b.scope!r} to hook"
            row["saturation"] = _saturation(got)
        if b.name in local:
            lm = gate_metrics(local[b.name], got, b.kind)
            row["local_max_abs"] = lm.get("max_abs")
            row["local_mean_abs"] = lm.get("mean_abs")
            row["local_cosine_min"] = lm.get("cosine_min")
        rows.append(row)
    ranked = [r for r in rows if r.get(RANK_BY) is not None]
    key = RANK_BY if ranked else "mean_abs"
    ranked = ranked or [r for r in rows if r.get("mean_abs") is not None]
    top = max(ranked, key=lambda r: r[key]) if ranked else None
    worst = top["block"] if top is not None and top[key] > NO_LOSS else None
    if top is not None and worst is None:
        notes.append(f"no block loses precision measurably (largest {key} {top[key]:.1e} <= {NO_LOSS:g})")
    return {"blocks": rows, "worst": worst, "rank_by": key, "notes": notes}


def torch_reference_gates(module, model_path: str | Path, x: np.ndarray, batch: int = 16) -> dict[str, np.ndarray | None]:
    """PyTorch gates for the blocks of ``model_path`` (run once, reuse for every artifact)."""
    blocks = find_attention_gates(onnx.load(str(model_path), load_external_data=False))
    if not blocks:
        return {}
    return torch_gates(module, x, {b.name: b.scope for b in blocks}, batch)


def onnx_reference_gates(model_path: str | Path, x: np.ndarray, workdir: str | Path, batch: int = 16) -> dict[str, np.ndarray]:
    """Gates of the FP32 ONNX ``model_path`` by block name: the reference when no PyTorch model exists."""
    dbg = make_debug_copy(model_path, Path(workdir) / (Path(model_path).stem + ".reference-debug.onnx"))
    if not dbg.blocks:
        return {}
    outs = run_debug_model(dbg, check_inputs(x), batch)
    return {b.name: outs[dbg.gate_outputs[b.name]] for b in dbg.blocks}


def check_inputs(x: np.ndarray) -> np.ndarray:
    """Validate a fidelity input batch (N x ... float array with N >= 1)."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise InputError(f"fidelity inputs: expected a batch (N x C x H x W) with N >= 1, found shape {list(x.shape)}")
    return x.astype(np.float32, copy=False)
