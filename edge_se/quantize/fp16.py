"""FP16 ONNX for ONNX Runtime and TensorRT, with the overflow-prone ops kept FP32 by rule.

Converter: ONNX Runtime's ``onnxruntime.transformers.float16.convert_float_to_float16`` (ships
with onnxruntime, so no extra dependency; it is the converter onnxconverter-common's
``float16`` module was forked into). It inserts Cast nodes around every blocked op.

Kept in FP32 (:data:`FP32_OPS`), because FP16 (max 65504, ~3 decimal digits) overflows or
loses the result there:

* sums and means over many elements (``ReduceSum``, ``ReduceMean``, ``ReduceSumSquare``,
  ``ReduceL2``, ``ReduceLogSumExp``, ``GlobalAveragePool``): a 56x56 spatial sum of
  activations of ~20 overflows; SE/CBAM pools and SimAM's energy term are such reductions;
* ``Exp``, ``Softmax``, ``LogSoftmax`` (``exp(12) > 65504``) - SK's branch softmax;
* ``Pow``, ``Sqrt``, ``Reciprocal``, ``Div`` (squares and their inverses: SimAM's variance,
  L2 norms; NVIDIA/TensorRT#1954, onnxruntime#13639).

Model inputs/outputs stay FP32 unless ``keep_io_types=False``.
"""

from __future__ import annotations

from pathlib import Path

FP32_OPS = (
    "ReduceSum",
    "ReduceMean",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "GlobalAveragePool",
    "Exp",
    "Softmax",
    "LogSoftmax",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Div",
)


def convert_fp16(model_path: str | Path, out_path: str | Path, *, keep_io_types: bool = True) -> dict:
    """Write the FP16 model; returns what was kept FP32 (op types and node names) for the manifest."""
    import logging

    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(model_path))
    kept = [n.name or f"{n.op_type}#{i}" for i, n in enumerate(model.graph.node) if n.op_type in FP32_OPS]
    logger = logging.getLogger("onnxruntime.transformers.float16")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        converted = convert_float_to_float16(model, keep_io_types=keep_io_types, op_block_list=list(FP32_OPS))
    finally:
        logger.setLevel(level)
    topological_sort(converted.graph)
    onnx.save_model(converted, str(out_path))
    return {
        "converter": "onnxruntime.transformers.float16",
        "keep_io_types": keep_io_types,
        "fp32_op_types": list(FP32_OPS),
        "kept_fp32_nodes": kept,
    }


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` so every node follows its producers (TensorRT's parser needs it;
    the converter appends its Cast nodes at the end). Stable: keeps the original order otherwise."""
    nodes = list(graph.node)
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    done = [False] * len(nodes)
    ordered = []
    progress = True
    while progress:
        progress = False
        for i, n in enumerate(nodes):
            if not done[i] and all(t in available for t in n.input):
                ordered.append(n)
                available.update(n.output)
                done[i] = progress = True
    ordered += [n for i, n in enumerate(nodes) if not done[i]]  # cycles/subgraph refs: leave as is
    del graph.node[:]
    graph.node.extend(ordered)


__all__ = ["FP32_OPS", "convert_fp16", "topological_sort"]
