"""Find attention gates in an ONNX graph by pattern, on any model (zoo, torchvision, timm).

An attention gate is a tensor ``g`` computed from a feature map ``x`` *through a reduction*
(global pool, channel mean/max, sum of squares) and a gating activation (Sigmoid, HardSigmoid,
Softmax), that then rescales a feature map: ``y = x * g`` (optionally through shape-only ops,
Q/DQ pairs, or BAM's ``1 + g``). Matching on that structure, rather than on module classes,
finds the gates of every exporter and framework:

============== ==========================================================================
kind           pattern between ``x`` and the gate
============== ==========================================================================
se             spatial pool -> Conv/Gemm/MatMul -> act -> Conv/Gemm -> Sigmoid|HardSigmoid
eca            spatial pool -> Reshape/Unsqueeze/Squeeze around a 1-D Conv -> Sigmoid
cbam_channel   avg- and max-pool branches through a shared MLP -> Add -> Sigmoid
cbam_spatial   mean/max over the channel axis -> Concat -> Conv -> Sigmoid
bam            ... -> Sigmoid -> Add(1) -> Mul (``x * (1 + g)``), or ``x + x * g``
sk             ... -> Softmax (over the branch axis) -> Mul -> ReduceSum/Add
simam          Sub(mean) -> Pow/Mul -> ReduceSum/ReduceMean -> Div -> Add -> Sigmoid
gate           a gate that fits none of the above (still reported)
============== ==========================================================================

SiLU/Swish (``x * sigmoid(x)``) and hard-swish are activations, not gates: with no reduction
between ``x`` and the gate they never match. Names come from the scopes ``torch.onnx`` writes
into node names (``/layer1/layer1.0/se/gate/Sigmoid`` -> block ``layer1.0.se``, gate module
``layer1.0.se.gate``); graphs without scoped names get ``<kind>.<index>``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
from onnx import numpy_helper

GATE_OPS = frozenset({"Sigmoid", "HardSigmoid", "Softmax", "QLinearSigmoid", "QLinearSoftmax"})
#: ops that only move or re-encode the gate between the activation and the rescaling Mul
PASSTHROUGH_OPS = frozenset(
    {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Expand", "Identity", "Cast",
     "QuantizeLinear", "DequantizeLinear", "Split", "Slice", "Gather"}
)
REDUCTION_OPS = frozenset(
    {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum", "ReduceSumSquare", "ReduceL2",
     "QLinearGlobalAveragePool", "QLinearReduceMean"}
)
LINEAR_OPS = frozenset(
    {"Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "QGemm"}
)
#: position of the two data operands of binary ops (ONNX Runtime's QOperator format interleaves
#: scales and zero points)
_BINARY_DATA = {"Mul": (0, 1), "Add": (0, 1), "QLinearMul": (0, 3), "QLinearAdd": (0, 3)}
KINDS = ("se", "eca", "cbam_channel", "cbam_spatial", "bam", "sk", "simam", "gate")


@dataclass(frozen=True)
class GateBlock:
    """One attention gate found in a graph.

    Attributes:
        name: stable, readable block name (``layer1.0.se``, ``features.1.0.block.1``).
        kind: one of :data:`KINDS`.
        nodes: names of the nodes of the gate subgraph, pool through the rescaling Mul, in
            graph order (unnamed nodes appear as ``<op_type>#<index>``).
        gate_output: the tensor fed to the rescaling Mul (the Sigmoid/Softmax output).
        scaled_input: the feature map the gate rescales (first rescaling Mul's other input).
        gate_node: name of the Sigmoid/HardSigmoid/Softmax node.
        gate_op: its op type.
        rescale_nodes: names of the rescaling Mul node(s).
        scope: the PyTorch module path of the gate node (``layer1.0.se.gate``), or ``None``
            when the graph has no torch scopes.
        gate_output_quant: for QOperator graphs (``QLinearSigmoid``), the (scale, zero point)
            tensors that dequantize ``gate_output``; ``None`` when it is a float tensor.
        node_indices: positions of ``nodes`` in ``graph.node``.
    """

    name: str
    kind: str
    nodes: tuple[str, ...]
    gate_output: str
    scaled_input: str
    gate_node: str = ""
    gate_op: str = ""
    rescale_nodes: tuple[str, ...] = ()
    scope: str | None = None
    gate_output_quant: tuple[str, str] | None = None
    node_indices: tuple[int, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "nodes": list(self.nodes),
            "gate_output": self.gate_output,
            "scaled_input": self.scaled_input,
            "gate_node": self.gate_node,
            "gate_op": self.gate_op,
            "rescale_nodes": list(self.rescale_nodes),
            "scope": self.scope,
            "gate_output_quant": list(self.gate_output_quant) if self.gate_output_quant else None,
        }


def module_path(node_name: str) -> str | None:
    """The PyTorch module path encoded in a ``torch.onnx`` node name, or ``None``.

    ``/layer1/layer1.0/se/gate/Sigmoid`` -> ``layer1.0.se.gate``; ``/features/features.1/
    features.1.0/block/block.1/fc1/Conv`` -> ``features.1.0.block.1.fc1``; ``/Add`` -> ``""``.
    """
    parts = node_name.split("/")
    if len(parts) < 2 or parts[0] != "":
        return None
    path: list[str] = []
    last = None
    for comp in parts[1:-1]:
        if last is not None and comp.startswith(last + "."):
            path.extend(comp[len(last) + 1 :].split("."))
        else:
            path.extend(comp.split("."))
        last = comp
    return ".".join(path)


def node_attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of ``node`` (``default`` when it is not set)."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class _Graph:
    """Producer/consumer index of one ONNX graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.nodes = list(model.graph.node)
        self.inits = {t.name: t for t in model.graph.initializer}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.output:
                if t:
                    self.producer[t] = i
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)

    def label(self, i: int) -> str:
        n = self.nodes[i]
        return n.name or f"{n.op_type}#{i}"

    def const_value(self, tensor: str) -> np.ndarray | None:
        """Value of an initializer/Constant tensor (through Identity/Cast/DequantizeLinear-free chains)."""
        if tensor in self.inits:
            return numpy_helper.to_array(self.inits[tensor])
        i = self.producer.get(tensor)
        if i is None:
            return None
        n = self.nodes[i]
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name == "value_float":
                    return np.array(a.f, dtype=np.float32)
                if a.name == "value_floats":
                    return np.array(list(a.floats), dtype=np.float32)
                if a.name in ("value_int",):
                    return np.array(a.i)
                if a.name == "value_ints":
                    return np.array(list(a.ints))
            return None
        if n.op_type in ("Identity", "Cast") and n.input:
            return self.const_value(n.input[0])
        if n.op_type == "DequantizeLinear" and len(n.input) >= 2:
            qi = self.producer.get(n.input[0])
            if qi is not None and self.nodes[qi].op_type == "QuantizeLinear":  # Q/DQ around a float constant
                return self.const_value(self.nodes[qi].input[0])
            q, scale = self.const_value(n.input[0]), self.const_value(n.input[1])
            zero = self.const_value(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros(1)
            if q is None or scale is None or zero is None or scale.size != 1 or zero.size != 1:
                return None
            return (q.astype(np.float64) - zero.astype(np.float64).item()) * scale.astype(np.float64).item()
        return None

    def operand_value(self, i: int, tensor: str) -> np.ndarray | None:
        """Constant value of the operand of binary node ``i`` that is not ``tensor`` (dequantized)."""
        n = self.nodes[i]
        pos = _BINARY_DATA[n.op_type][1] if n.input[_BINARY_DATA[n.op_type][0]] == tensor else _BINARY_DATA[n.op_type][0]
        value = self.const_value(n.input[pos])
        if value is None or not n.op_type.startswith("QLinear"):
            return value
        scale, zero = self.const_value(n.input[pos + 1]), self.const_value(n.input[pos + 2])
        if scale is None or zero is None:
            return None
        return (value.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)

    def is_const(self, tensor: str) -> bool:
        if tensor in self.inits:
            return True
        i = self.producer.get(tensor)
        if i is None:
            return False
        n = self.nodes[i]
        if n.op_type == "Constant":
            return True
        if n.op_type in ("Identity", "Cast", "DequantizeLinear", "QuantizeLinear") and n.input:
            return self.is_const(n.input[0])
        return False

    def ancestors(self, tensors: Iterable[str]) -> set[int]:
        """Indices of all nodes that (transitively) produce ``tensors``."""
        seen: set[int] = set()
        queue = deque(t for t in tensors)
        while queue:
            i = self.producer.get(queue.popleft())
            if i is None or i in seen:
                continue
            seen.add(i)
            queue.extend(t for t in self.nodes[i].input if t)
        return seen

    def path_nodes(self, source: str, within: set[int]) -> set[int]:
        """Nodes of ``within`` reachable from tensor ``source``."""
        seen: set[int] = set()
        queue = deque([source])
        while queue:
            for i in self.consumers.get(queue.popleft(), ()):
                if i in within and i not in seen:
                    seen.add(i)
                    queue.extend(t for t in self.nodes[i].output if t)
        return seen

    def attr(self, i: int, name: str):
        return node_attr(self.nodes[i], name)

    def reduce_axes(self, i: int) -> tuple[int, ...] | None:
        n = self.nodes[i]
        if n.op_type in ("GlobalAveragePool", "GlobalMaxPool", "QLinearGlobalAveragePool"):
            return (2, 3)
        axes = self.attr(i, "axes")
        if axes is None and len(n.input) > 1 and n.input[1]:
            v = self.const_value(n.input[1])
            axes = None if v is None else v.reshape(-1).tolist()
        return None if axes is None else tuple(int(a) for a in axes)


def _binary_data(n: onnx.NodeProto) -> tuple[str, str]:
    a, b = _BINARY_DATA[n.op_type]
    return (n.input[a], n.input[b]) if len(n.input) > b else ("", "")


def _other_operand(n: onnx.NodeProto, tensor: str) -> str:
    a, b = _binary_data(n)
    return b if a == tensor else a


def _is_all_ones(value: np.ndarray | None) -> bool:
    # quantized graphs store the 1 as int8/uint8 with a scale: allow its rounding error
    return value is not None and value.size > 0 and bool(np.allclose(value, 1.0, rtol=0, atol=1e-2))


def _follow_gate(g: _Graph, gate_idx: int) -> tuple[list[int], list[tuple[int, str]], bool]:
    """Walk from the gate output to the rescaling Mul(s).

    Returns (chain node indices, [(mul index, scaled input tensor)], plus_one) where plus_one
    says the gate passed through ``Add(1)`` (BAM's ``1 + g``).
    """
    chain: list[int] = []
    muls: list[tuple[int, str]] = []
    plus_one = False
    chain_tensors = {g.nodes[gate_idx].output[0]}
    queue = deque([(g.nodes[gate_idx].output[0], 0)])
    while queue:
        tensor, depth = queue.popleft()
        if depth > 8:
            continue
        for i in g.consumers.get(tensor, ()):
            n = g.nodes[i]
            data_in = n.input[0] if n.input else ""
            if n.op_type in PASSTHROUGH_OPS and data_in == tensor:
                step = True
            elif n.op_type in ("Add", "QLinearAdd") and tensor in _binary_data(n):
                step = _is_all_ones(g.operand_value(i, tensor))
                plus_one = plus_one or step
            elif n.op_type in ("Mul", "QLinearMul") and tensor in _binary_data(n):
                other = _other_operand(n, tensor)
                if other not in chain_tensors and not g.is_const(other):
                    muls.append((i, other))
                step = False
            else:
                step = False
            if step and i not in chain:
                chain.append(i)
                for t in n.output:
                    if t:
                        chain_tensors.add(t)
                        queue.append((t, depth + 1))
    return chain, muls, plus_one


def _base_op(op_type: str) -> str:
    """The float op a QOperator node stands for (``QLinearAdd`` -> ``Add``)."""
    return op_type[len("QLinear"):] if op_type.startswith("QLinear") else op_type


def _classify(g: _Graph, gate_idx: int, body: set[int], muls: list[tuple[int, str]], plus_one: bool) -> str:
    ops = [_base_op(g.nodes[i].op_type) for i in body]
    if g.nodes[gate_idx].op_type in ("Softmax", "QLinearSoftmax"):
        return "sk"
    if plus_one:
        return "bam"
    for mi, x in muls:  # x + x * g
        out = g.nodes[mi].output[0]
        for c in g.consumers.get(out, ()):
            if g.nodes[c].op_type in ("Add", "QLinearAdd") and x in _binary_data(g.nodes[c]):
                return "bam"
    for i in body:
        n = g.nodes[i]
        if n.op_type in ("Conv", "QLinearConv"):
            ks = g.attr(i, "kernel_shape")
            wi = 1 if n.op_type == "Conv" else 3
            w = g.inits.get(n.input[wi]) if len(n.input) > wi else None
            if (ks is not None and len(ks) == 1) or (ks is None and w is not None and len(w.dims) == 3):
                return "eca"
    reductions = [(i, g.reduce_axes(i)) for i in body if g.nodes[i].op_type in REDUCTION_OPS]
    channel_reduce = [i for i, ax in reductions if ax in ((1,), (-3,))]
    if channel_reduce and "Concat" in ops:
        return "cbam_spatial"
    spatial = [i for i, ax in reductions if ax is not None and set(ax) in ({2, 3}, {-2, -1})]
    avg = any(g.nodes[i].op_type in ("ReduceMean", "GlobalAveragePool", "QLinearGlobalAveragePool", "QLinearReduceMean")
              for i in spatial)
    mx = any(g.nodes[i].op_type in ("ReduceMax", "GlobalMaxPool") for i in spatial)
    has_linear = any(op in LINEAR_OPS for op in ops)
    if avg and mx and "Add" in ops and has_linear:
        return "cbam_channel"
    if not has_linear and "Sub" in ops and "Div" in ops:
        return "simam"
    if has_linear:
        return "se"
    return "gate"


def _block_name(g: _Graph, indices: Iterable[int]) -> str | None:
    paths = [module_path(g.nodes[i].name) for i in indices if g.nodes[i].name]
    paths = [p for p in paths if p]
    paths = [p.split(".") for p in paths if p is not None]
    if not paths:
        return None
    common: list[str] = []
    for parts in zip(*paths):
        if all(p == parts[0] for p in parts):
            common.append(parts[0])
        else:
            break
    return ".".join(common) or None


def find_attention_gates(model: onnx.ModelProto | str | Path) -> list[GateBlock]:
    """Every attention gate of ``model`` (a ModelProto or a path), in graph order."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    g = _Graph(model)
    blocks: list[GateBlock] = []
    used_names: dict[str, int] = {}
    for gi, node in enumerate(g.nodes):
        if node.op_type not in GATE_OPS or not node.input or not node.output:
            continue
        chain, muls, plus_one = _follow_gate(g, gi)
        if not muls:
            continue
        anc = g.ancestors(node.input)
        body: set[int] = set()
        for _, x in muls:
            body |= g.path_nodes(x, anc)
        if not any(g.nodes[i].op_type in REDUCTION_OPS for i in body):
            continue  # SiLU, hard-swish, GLU-style products: no pooling, not attention
        kind = _classify(g, gi, body, muls, plus_one)
        members = sorted(body | {gi} | set(chain) | {mi for mi, _ in muls})
        scope = module_path(node.name) if node.name else None
        # the gate and its rescaling Mul(s) name the block: their common module scope is the
        # attention module, whatever Q/DQ or shape nodes the body picked up around it
        name = (
            _block_name(g, [gi] + [mi for mi, _ in muls])
            or _block_name(g, members)
            or f"{kind}.{sum(b.kind == kind for b in blocks)}"
        )
        used_names[name] = used_names.get(name, 0) + 1
        if used_names[name] > 1:
            name = f"{name}#{used_names[name]}"
        blocks.append(
            GateBlock(
                name=name,
                kind=kind,
                nodes=tuple(g.label(i) for i in members),
                gate_output=node.output[0],
                scaled_input=muls[0][1],
                gate_node=g.label(gi),
                gate_op=node.op_type,
                rescale_nodes=tuple(g.label(mi) for mi, _ in muls),
                scope=scope,
                gate_output_quant=(node.input[3], node.input[4]) if node.op_type.startswith("QLinear") else None,
                node_indices=tuple(members),
            )
        )
    return blocks


def gate_node_names(blocks: Iterable[GateBlock]) -> list[str]:
    """All node names of ``blocks`` (for quantizer exclusion lists), without duplicates."""
    seen: dict[str, None] = {}
    for b in blocks:
        for n in b.nodes:
            seen.setdefault(n, None)
    return list(seen)
