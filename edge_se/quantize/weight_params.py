"""Weight scales computed once per INT8 file and handed to ONNX Runtime on every later build.

ONNX Runtime's QDQ quantizer computes each weight's per-channel scale in a Python loop over
the channels (on se_resnet50, 43,608 channels: a build took 2.5-2.9 s with it, 1.4-2.2 s
without, measured 2026-12-04 on a 2-core Xeon); ``auto``'s probes and
``--method auto`` build the same file dozens of times with the same weights. The first build
teaches :class:`WeightParams` which initializers it quantized as int8 and on which axis; it
computes their scales once, with ONNX Runtime's own ``compute_data_quant_params`` exactly as its
quantizer does, and later builds pass them as ``TensorQuantOverrides`` (the quantizer's
documented way to supply a scale and zero point), so the files are the same bytes, only faster
(tests/quantize/test_weight_params.py builds both ways). ONNX Runtime still adjusts a scale for
an int32 bias afterwards, as without the overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

_QUANTIZED_SUFFIX = "_quantized"  # ONNX Runtime's name of a weight it stored as integers


class WeightParams:
    """Per-tensor or per-channel scale and zero point of the int8 weights of one INT8 file.

    One instance serves builds of one flavour with one set of weight values (rounded or not) and
    one ``reduce_range``; builds that keep some nodes float get no overrides for those nodes'
    initializers (ONNX Runtime computes any weight it has not seen)."""

    def __init__(self) -> None:
        self._params: dict[str, list[dict[str, Any]]] | None = None
        self._users: dict[str, set[str]] = {}
        self._reduce_range: bool | None = None

    @property
    def learned(self) -> bool:
        return self._params is not None

    def overrides(self, nodes_to_exclude: Sequence[str], reduce_range: bool) -> dict[str, list[dict[str, Any]]]:
        """``TensorQuantOverrides`` entries for a build keeping ``nodes_to_exclude`` float."""
        if self._params is None or reduce_range != self._reduce_range:
            return {}
        kept = set(nodes_to_exclude)
        return {name: p for name, p in self._params.items() if not (self._users.get(name, set()) & kept)}

    def learn(self, src: str | Path, out: str | Path, reduce_range: bool) -> None:
        """Record the int8 weights ``out`` (ONNX Runtime's QDQ output for ``src``) quantized."""
        if self._params is not None:
            return
        import onnx
        from onnx import numpy_helper

        try:
            from onnxruntime.quantization.quant_utils import compute_data_quant_params
        except ImportError:  # an ONNX Runtime without it: every build computes its own scales
            self._params = {}
            return
        src_model = onnx.load(str(src))
        q_model = onnx.load(str(out), load_external_data=False)
        src_inits = {i.name: i for i in src_model.graph.initializer}
        q_inits = {i.name: i for i in q_model.graph.initializer}
        params: dict[str, list[dict[str, Any]]] = {}
        for node in q_model.graph.node:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
                continue
            name = node.input[0]
            if node.op_type == "DequantizeLinear" and name.endswith(_QUANTIZED_SUFFIX):
                name = name[: -len(_QUANTIZED_SUFFIX)]
            scale, zero = q_inits.get(node.input[1]), q_inits.get(node.input[2])
            if name not in src_inits or name in params or scale is None or zero is None:
                continue
            if zero.data_type != onnx.TensorProto.INT8:  # uint8 activation constants, int32 biases
                continue
            data = numpy_helper.to_array(src_inits[name])
            if len(scale.dims) == 0:
                z, s = compute_data_quant_params(data.flatten(), onnx.TensorProto.INT8, True, reduce_range=reduce_range)
                params[name] = [{"scale": float(s), "zero_point": int(z)}]
                continue
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            axis = axis + data.ndim if axis < 0 else axis
            channels = []
            for c in range(data.shape[axis]):
                z, s = compute_data_quant_params(data.take(c, axis).ravel(), onnx.TensorProto.INT8, True,
                                                 reduce_range=reduce_range)
                channels.append({"axis": axis, "scale": float(s), "zero_point": int(z)})
            params[name] = channels
        users: dict[str, set[str]] = {}
        for node in src_model.graph.node:
            for t in node.input:
                if t in params:
                    users.setdefault(t, set()).add(node.name)
        self._params, self._users, self._reduce_range = params, users, reduce_range


__all__ = ["WeightParams"]
