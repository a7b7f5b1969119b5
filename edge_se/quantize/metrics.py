"""Task-level INT8/FP16 metrics on logits: accuracy, top-1 agreement with FP32, logit SQNR."""

from __future__ import annotations

from typing import Any

import numpy as np


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``got`` against ``ref`` in dB (inf when equal)."""
    ref = np.asarray(ref, dtype=np.float64)
    noise = float(((np.asarray(got, dtype=np.float64) - ref) ** 2).sum())
    signal = float((ref**2).sum())
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-300) / noise))


def logit_metrics(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Agreement (%), SQNR (dB) and, with labels, both accuracies (%) and the drop (points)."""
    out: dict[str, Any] = {
        "samples": int(ref.shape[0]),
        "agreement": 100.0 * float((ref.argmax(1) == got.argmax(1)).mean()),
        "sqnr_db": sqnr_db(ref, got),
    }
    if labels is not None:
        labels = np.asarray(labels)
        acc_ref = 100.0 * float((ref.argmax(1) == labels).mean())
        acc = 100.0 * float((got.argmax(1) == labels).mean())
        out.update(accuracy=acc, accuracy_fp32=acc_ref, accuracy_drop=acc_ref - acc)
    return out


def run_onnx(path_or_session: Any, x: np.ndarray, batch: int = 256, threads: int | None = None) -> np.ndarray:
    """First output of an ONNX model on ORT CPU over ``x`` in batches (float32 result)."""
    import onnxruntime as ort

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


__all__ = ["logit_metrics", "run_onnx", "sqnr_db"]
