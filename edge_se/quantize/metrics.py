"""ONNX Runtime over an evaluation array in the batches the quantize stage's memory plan allows."""

from __future__ import annotations

from typing import Any

import numpy as np


def run_onnx(path_or_session: Any, x: np.ndarray, batch: int | None = None, threads: int | None = None) -> np.ndarray:
    """First output of an ONNX model on ORT CPU over ``x`` in batches (float32 result); ``batch``
    defaults to the active memory plan's evaluation batch (:func:`edge_se.quantize.memory.eval_batch`)."""
    import onnxruntime as ort

    from edge_se.quantize.memory import eval_batch

    batch = batch or eval_batch()

    sess = path_or_session
    if not isinstance(sess, ort.InferenceSession):
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path_or_session), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    outs = [sess.run(None, {inp.name: x[i : i + batch].astype(dtype)})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs).astype(np.float32)


__all__ = ["run_onnx"]
