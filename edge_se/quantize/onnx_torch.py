"""A Q/DQ ONNX graph as a differentiable PyTorch function, for quantization-aware distillation.

The INT8 file itself is interpreted, so the simulation quantizes exactly the tensors the deployed
file quantizes, with its scales, zero points, saturation and rounding (half to even, as ONNX
``QuantizeLinear`` and ONNX Runtime's requantization do), and the int32 biases of the CPU file.
Rounding passes gradients straight through (STE). The weights and biases of every Conv,
ConvTranspose, Gemm and MatMul become trainable, in units of their quantization step:

* an integer initializer behind a ``DequantizeLinear`` (the CPU file's int8 weights and int32
  biases): the latent value is the integer itself, rounded (and saturated) on the way in;
* a float initializer behind a ``QuantizeLinear`` (the TensorRT file's weights): the latent value
  is the weight divided by its scale;
* any other float weight or bias (float-kept layers, the TensorRT file's biases): divided by
  ``max|w| / 127`` so that every parameter moves on the same scale.

:meth:`QDQModule.write_back` stores the trained values into the same initializers, so the file
written is the model that was trained. Unsupported operators raise :class:`InputError` naming them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edge_se.errors import InputError
from edge_se.quantize.policies import WEIGHTED_OPS
_INT_RANGES = {2: (0, 255), 3: (-128, 127), 6: (-(2**31), 2**31 - 1)}  # uint8, int8, int32


def _attr(node, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class QDQModule:
    """``module(x) -> first output`` of a (Q/DQ or float) ONNX graph, in PyTorch, trainable."""

    def __init__(self, model: Any, trainable: bool = True, learn_scales: bool = False) -> None:
        import torch
        from onnx import numpy_helper

        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, Any] = {}
        self.dtypes: dict[str, int] = {}
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            self.dtypes[init.name] = init.data_type
            self.consts[init.name] = torch.from_numpy(np.array(arr, dtype=np.float32 if arr.dtype.kind == "f" else arr.dtype))
        self.input = model.graph.input[0].name
        self.output = model.graph.output[0].name
        self.nodes = list(model.graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        ops = _ops()
        unsupported = sorted({n.op_type for n in self.nodes if n.op_type not in ops and n.op_type not in _SPECIAL})
        if unsupported:
            raise InputError(f"quantization-aware fine-tuning does not support the ONNX operator(s) {', '.join(unsupported)} "
                             "of this model; run without --finetune")
        self.params: dict[str, torch.nn.Parameter] = {}
        self.unit: dict[str, Any] = {}  # latent * unit = the value the graph sees (before rounding)
        self.scales: dict[str, torch.nn.Parameter] = {}  # log of learned activation scales
        self.bias_tie: dict[str, tuple[str, str]] = {}  # int32-bias DQ node -> (input scale, weight scale)
        if trainable:
            self._make_params()
            self._tie_biases()
            if learn_scales:
                self._make_scales()

    # -- parameters ---------------------------------------------------------------------
    def _make_params(self) -> None:
        import torch

        for node in self.nodes:
            if node.op_type not in WEIGHTED_OPS:
                continue
            for idx in (1, 2):
                if idx >= len(node.input) or not node.input[idx]:
                    continue
                name, unit = self._source(node.input[idx])
                if name is None or name in self.params:
                    continue
                value = self.consts[name].to(torch.float32)
                self.unit[name] = unit
                self.params[name] = torch.nn.Parameter(value / unit)

    def _tie_biases(self) -> None:
        """An int32 bias is on the grid ``s_x * s_w`` (ONNX Runtime's QLinearConv assumes it): keep it so."""
        for node in self.nodes:
            if node.op_type not in WEIGHTED_OPS or len(node.input) < 3:
                continue
            dqs = [self.producer.get(t) for t in node.input[:3]]
            if all(d is not None and d.op_type == "DequantizeLinear" for d in dqs) and \
                    self.dtypes.get(dqs[2].input[0]) == 6:
                self.bias_tie[dqs[2].name] = (dqs[0].input[1], dqs[1].input[1])

    def _make_scales(self) -> None:
        """Per-tensor activation scales (QuantizeLinear of a computed tensor) become trainable (log)."""
        import torch

        for node in self.nodes:
            if node.op_type != "QuantizeLinear" or node.input[0] in self.consts or node.input[0] in self.params:
                continue
            name = node.input[1]
            if name in self.consts and self.dtypes[name] == 1 and self.consts[name].numel() == 1 and name not in self.scales:
                self.scales[name] = torch.nn.Parameter(torch.log(self.consts[name].reshape(()).clamp_min(1e-12)))

    def _source(self, tensor: str) -> tuple[str | None, Any]:
        """(initializer to train, its unit) behind ``tensor``; ``(None, None)`` when there is none."""
        import torch

        if tensor in self.consts:
            if self.dtypes[tensor] != 1:
                return None, None
            w = self.consts[tensor]
            return tensor, torch.clamp(w.abs().max() / 127.0, min=1e-12)
        dq = self.producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None, None
        if dq.input[0] in self.consts:  # integer initializer -> DQ
            q = self.consts[dq.input[0]]
            # int8 weights move in steps of 1; an int32 bias (scale s_x * s_w, a very fine grid) in
            # steps of max|b| / 127 like a float bias, or it could never move
            unit = torch.tensor(1.0) if self.dtypes[dq.input[0]] != 6 else torch.clamp(q.abs().max().float() / 127.0, min=1.0)
            return dq.input[0], unit
        q = self.producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear" and q.input[0] in self.consts and self.dtypes[q.input[0]] == 1:
            scale = self.consts[q.input[1]]
            axis = _attr(q, "axis", 1)
            w = self.consts[q.input[0]]
            return q.input[0], _broadcast(scale, w.dim(), axis)
        return None, None

    def parameters(self) -> list[Any]:
        return list(self.params.values())

    def scale_parameters(self) -> list[Any]:
        return list(self.scales.values())

    def value(self, name: str) -> Any:
        import torch

        if name in self.scales:
            return torch.exp(self.scales[name]).reshape(self.consts[name].shape)
        if name in self.params:
            p = self.params[name]
            if self.dtypes[name] == 1:
                return p * self.unit[name]
            lo, hi = _INT_RANGES[self.dtypes[name]]
            return torch.clamp(_round_ste(p * self.unit[name]), lo, hi)
        return self.consts[name]

    def write_back(self) -> Any:
        """The ONNX model with the trained values in its initializers (integers rounded and saturated)."""
        import torch
        from onnx import numpy_helper

        np_types = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32}
        ties = {self._node(n).input[1]: pair for n, pair in self.bias_tie.items()}
        with torch.no_grad():
            for init in self.model.graph.initializer:
                if init.name in ties and self.scales:
                    xs, ws = ties[init.name]
                    v = (self.value(xs).reshape(-1) * self.value(ws).reshape(-1)).numpy().astype(np.float32)
                    init.CopyFrom(numpy_helper.from_array(v.reshape(tuple(init.dims)), init.name))
                    continue
                if init.name in self.scales:
                    v = self.value(init.name).numpy().astype(np.float32)
                    init.CopyFrom(numpy_helper.from_array(v.reshape(tuple(init.dims)), init.name))
                    continue
                if init.name not in self.params:
                    continue
                v = self.value(init.name).detach().cpu().numpy()
                arr = np.asarray(np.rint(v) if self.dtypes[init.name] != 1 else v, dtype=np_types[self.dtypes[init.name]])
                init.CopyFrom(numpy_helper.from_array(arr.reshape(tuple(init.dims)), init.name))
        return self.model

    def _node(self, name: str) -> Any:
        return next(n for n in self.nodes if n.name == name)

    # -- forward --------------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        env: dict[str, Any] = {self.input: x}
        ops = _ops()

        def get(name: str) -> Any:
            if not name:
                return None
            if name in env:
                return env[name]
            return self.value(name)

        for node in self.nodes:
            ins = [get(t) for t in node.input]
            if node.op_type in _SPECIAL:
                outs = _SPECIAL[node.op_type](self, node, ins)
            else:
                outs = ops[node.op_type](node, ins, self.opset)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(node.output, outs):
                env[name] = v
        return env[self.output]


def _round_ste(x: Any) -> Any:
    import torch

    return x + (torch.round(x) - x).detach()


def _broadcast(scale: Any, ndim: int, axis: int) -> Any:
    if scale.dim() == 0 or scale.numel() == 1:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return scale.reshape(shape)


def _zero_point(node, ins, ndim: int, axis: int) -> tuple[Any, tuple[int, int]]:
    import torch

    if len(ins) > 2 and ins[2] is not None:
        zp = ins[2]
        rng = _INT_RANGES.get(_ZP_TYPES.get(str(zp.dtype), 2), (0, 255))
        return _broadcast(zp.to(torch.float32), ndim, axis), rng
    return torch.tensor(0.0), (0, 255)


_ZP_TYPES = {"torch.uint8": 2, "torch.int8": 3, "torch.int32": 6}


def _quantize(mod: QDQModule, node, ins) -> Any:
    import torch

    x, scale = ins[0], ins[1]
    axis = _attr(node, "axis", 1)
    s = _broadcast(scale.to(torch.float32), x.dim(), axis)
    zp, (lo, hi) = _zero_point(node, ins, x.dim(), axis)
    return torch.clamp(_round_ste(x / s) + zp, lo, hi)


def _dequantize(mod: QDQModule, node, ins) -> Any:
    import torch

    q, scale = ins[0], ins[1]
    if node.name in mod.bias_tie and mod.scales:  # the int32 bias follows its input's learned scale
        xs, ws = mod.bias_tie[node.name]
        scale = mod.value(xs).reshape(-1) * mod.value(ws).reshape(-1)
    q = q.to(torch.float32)
    axis = _attr(node, "axis", 1)
    s = _broadcast(scale.to(torch.float32), q.dim(), axis)
    zp = _broadcast(ins[2].to(torch.float32), q.dim(), axis) if len(ins) > 2 and ins[2] is not None else 0.0
    return (q - zp) * s


_SPECIAL = {"QuantizeLinear": _quantize, "DequantizeLinear": _dequantize}


def _axes(node, ins, opset: int, idx: int = 1) -> list[int] | None:
    a = _attr(node, "axes")
    if a is None and len(ins) > idx and ins[idx] is not None:
        a = [int(v) for v in ins[idx].reshape(-1).tolist()]
    return list(a) if a is not None else None


def _reduce(fn):
    def run(node, ins, opset):
        x = ins[0]
        axes = _axes(node, ins, opset)
        keep = bool(_attr(node, "keepdims", 1))
        if axes is None:
            axes = list(range(x.dim()))
        return fn(x, axes, keep)
    return run


def _pad_asymmetric(x: Any, pads: list[int], nd: int, value: float) -> tuple[Any, list[int]]:
    """ONNX ``pads`` (begins then ends) that differ per side applied explicitly to ``x``; returns the
    input and the symmetric pads left for the op itself."""
    import torch.nn.functional as F

    if list(pads[:nd]) == list(pads[nd:]):
        return x, pads
    pad: list[int] = []
    for i in reversed(range(nd)):  # F.pad lists the last dimension first
        pad += [pads[i], pads[i + nd]]
    return F.pad(x, pad, value=value), [0] * (2 * nd)


def _conv(node, ins, opset):
    import torch.nn.functional as F

    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    strides = _attr(node, "strides", [1] * nd)
    dil = _attr(node, "dilations", [1] * nd)
    group = _attr(node, "group", 1)
    pads = _attr(node, "pads", [0] * (2 * nd))
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise InputError(f"Conv {node.name}: auto_pad is not supported by --finetune")
    x, pads = _pad_asymmetric(x, pads, nd, 0.0)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, b, stride=strides, padding=list(pads[:nd]), dilation=dil, groups=group)


def _conv_transpose(node, ins, opset):
    import torch.nn.functional as F

    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = w.dim() - 2
    pads = _attr(node, "pads", [0] * (2 * nd))
    if list(pads[:nd]) != list(pads[nd:]):
        raise InputError(f"ConvTranspose {node.name}: asymmetric pads are not supported by --finetune")
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    return fn(x, w, b, stride=_attr(node, "strides", [1] * nd), padding=list(pads[:nd]),
              output_padding=_attr(node, "output_padding", [0] * nd), groups=_attr(node, "group", 1),
              dilation=_attr(node, "dilations", [1] * nd))


def _gemm(node, ins, opset):
    a, b = ins[0], ins[1]
    if _attr(node, "transA", 0):
        a = a.t()
    if _attr(node, "transB", 0):
        b = b.t()
    y = _attr(node, "alpha", 1.0) * (a @ b)
    if len(ins) > 2 and ins[2] is not None:
        y = y + _attr(node, "beta", 1.0) * ins[2]
    return y


def _pool(kind):
    def run(node, ins, opset):
        import torch.nn.functional as F

        x = ins[0]
        k = _attr(node, "kernel_shape")
        nd = len(k)
        pads = _attr(node, "pads", [0] * (2 * nd))
        strides = _attr(node, "strides", [1] * nd)
        x, pads = _pad_asymmetric(x, pads, nd, float("-inf") if kind == "max" else 0.0)
        ceil = bool(_attr(node, "ceil_mode", 0))
        fn = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d}[(kind, nd)]
        if kind == "max":
            return fn(x, k, strides, list(pads[:nd]), dilation=_attr(node, "dilations", [1] * nd), ceil_mode=ceil)
        return fn(x, k, strides, list(pads[:nd]), ceil_mode=ceil,
                  count_include_pad=bool(_attr(node, "count_include_pad", 0)))
    return run


def _reshape(node, ins, opset):
    shape = [int(v) for v in ins[1].reshape(-1).tolist()]
    x = ins[0]
    shape = [x.shape[i] if s == 0 and not _attr(node, "allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(node, ins, opset):
    x = ins[0]
    axis = _attr(node, "axis", 1) % max(x.dim(), 1)
    return x.reshape(int(np.prod(x.shape[:axis])) if axis else 1, -1)


def _squeeze(node, ins, opset):
    x = ins[0]
    axes = _axes(node, ins, opset)
    if axes is None:
        return x.squeeze()
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _unsqueeze(node, ins, opset):
    x = ins[0]
    axes = _axes(node, ins, opset)
    out_rank = x.dim() + len(axes)
    for a in sorted(a % out_rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _split(node, ins, opset):
    import torch

    x = ins[0]
    axis = _attr(node, "axis", 0)
    sizes = _attr(node, "split")
    if sizes is None and len(ins) > 1 and ins[1] is not None:
        sizes = [int(v) for v in ins[1].tolist()]
    if sizes is None:
        n = len(node.output)
        sizes = [x.shape[axis] // n] * n
    return list(torch.split(x, list(sizes), dim=axis))


def _slice(node, ins, opset):
    x = ins[0]
    starts, ends = ins[1].tolist(), ins[2].tolist()
    axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    idx = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.shape[a]
        s = max(min(s + n if s < 0 else s, n), 0)
        e = max(min(e + n if e < 0 else e, n), 0)
        idx[a] = slice(s, e, st)
    return x[tuple(idx)]


def _batchnorm(node, ins, opset):
    import torch.nn.functional as F

    return F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, _attr(node, "epsilon", 1e-5))


def _constant(node, ins, opset):
    import torch
    from onnx import numpy_helper

    t = _attr(node, "value")
    arr = numpy_helper.to_array(t)
    return torch.from_numpy(np.array(arr, dtype=np.float32 if arr.dtype.kind == "f" else arr.dtype))


@functools.lru_cache(maxsize=None)
def _ops() -> dict:
    """The ONNX operators the interpreter runs, by op type (built once, on first use)."""
    import torch
    import torch.nn.functional as F

    def softmax(node, ins, opset):
        axis = _attr(node, "axis", -1 if opset >= 13 else 1)
        return torch.softmax(ins[0], dim=axis)

    def clip(node, ins, opset):
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else _attr(node, "min", None)
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else _attr(node, "max", None)
        return torch.clamp(ins[0], None if lo is None else float(lo), None if hi is None else float(hi))

    return {
        "Add": lambda n, i, o: i[0] + i[1], "Sub": lambda n, i, o: i[0] - i[1],
        "Mul": lambda n, i, o: i[0] * i[1], "Div": lambda n, i, o: i[0] / i[1],
        "Pow": lambda n, i, o: torch.pow(i[0], i[1]), "Sqrt": lambda n, i, o: torch.sqrt(i[0]),
        "Neg": lambda n, i, o: -i[0], "Exp": lambda n, i, o: torch.exp(i[0]), "Erf": lambda n, i, o: torch.erf(i[0]),
        "Relu": lambda n, i, o: F.relu(i[0]), "Sigmoid": lambda n, i, o: torch.sigmoid(i[0]),
        "Tanh": lambda n, i, o: torch.tanh(i[0]), "Softmax": softmax, "Clip": clip,
        "LeakyRelu": lambda n, i, o: F.leaky_relu(i[0], _attr(n, "alpha", 0.01)),
        "HardSigmoid": lambda n, i, o: torch.clamp(_attr(n, "alpha", 0.2) * i[0] + _attr(n, "beta", 0.5), 0, 1),
        "HardSwish": lambda n, i, o: F.hardswish(i[0]),
        "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": lambda n, i, o: i[0] @ i[1],
        "GlobalAveragePool": lambda n, i, o: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
        "GlobalMaxPool": lambda n, i, o: i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True),
        "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
        "ReduceMean": _reduce(lambda x, a, k: x.mean(dim=a, keepdim=k)),
        "ReduceMax": _reduce(lambda x, a, k: x.amax(dim=a, keepdim=k)),
        "ReduceSum": _reduce(lambda x, a, k: x.sum(dim=a, keepdim=k)),
        "Flatten": _flatten, "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
        "Transpose": lambda n, i, o: i[0].permute(*(_attr(n, "perm") or reversed(range(i[0].dim())))),
        "Concat": lambda n, i, o: torch.cat(i, dim=_attr(n, "axis")), "Split": _split, "Slice": _slice,
        "Identity": lambda n, i, o: i[0], "BatchNormalization": _batchnorm, "Constant": _constant,
    }


__all__ = ["QDQModule"]
