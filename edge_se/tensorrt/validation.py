"""Numerical check of a built engine against PyTorch, and trtexec-style latency (GPU only).

The reference is the bundle's TorchScript model (PyTorch) when torch is importable, otherwise
the FP32 ONNX on ONNX Runtime (itself checked against PyTorch at export); which one is recorded.
Tolerances are the project's per-precision ones (``edge_se.reference.tolerances``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from edge_se.bundle import Bundle


def latency_stats(run: Callable[[], Any], iterations: int = 200, warmup: int = 20) -> dict[str, float]:
    """Per-iteration wall time of ``run`` (which must synchronize) in ms: trtexec's summary
    statistics (min, max, mean, median, and the 90/95/99th percentiles)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    a = np.asarray(times)
    return {
        "iterations": iterations, "warmup": warmup, "min_ms": float(a.min()), "max_ms": float(a.max()),
        "mean_ms": float(a.mean()), "median_ms": float(np.median(a)),
        **{f"p{q}_ms": float(np.percentile(a, q)) for q in (90, 95, 99)},
    }


def reference_outputs(bundle: Bundle, x: np.ndarray) -> tuple[list[np.ndarray], str]:
    """FP32 reference outputs for ``x`` and which reference produced them."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None and "model.ts" in bundle.artifacts:
        from edge_se.reference.check import load_torchscript, torch_runner

        return torch_runner(load_torchscript(bundle.verify("model.ts")).eval())(x), "pytorch (model.ts)"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle.verify("model.onnx")), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x}), "onnxruntime fp32 (model.onnx)"


def validate_engine(bundle_root: str, engine_name: str, n: int = 8, iterations: int = 200) -> dict[str, Any]:
    """Run the engine on ``n`` real images, compare with the reference, time it; record the check."""
    from edge_se.runtime.backends.tensorrt_runner import TensorRTRunner
    from edge_se.reference.inputs import real_inputs
    from edge_se.reference.numerics import compare_outputs

    bundle = Bundle.open(bundle_root)
    rec = bundle.artifact(engine_name)
    plan = rec["plan"]
    lo, opt, hi = (tuple(s) for s in (plan["profiles"][0]["min"], plan["profiles"][0]["opt"], plan["profiles"][0]["max"]))
    spec = bundle.preprocessing()
    batch = max(lo[0], min(n, hi[0]))
    x, source = real_inputs(spec, batch)
    x = np.ascontiguousarray(x, dtype=np.float32)
    ref, ref_name = reference_outputs(bundle, x)
    with TensorRTRunner(bundle.verify(engine_name)) as runner:
        got = runner.infer({runner.inputs[0]: x})
        result = compare_outputs(ref, [got[name] for name in runner.outputs], rec["precision"], names=runner.outputs)
        feed = {runner.inputs[0]: np.ascontiguousarray(np.resize(x, opt), dtype=np.float32)}
        result["latency"] = latency_stats(lambda: runner.infer(feed), iterations=iterations)
    check = {"name": "tensorrt-numerics", "artifact": engine_name, "reference": ref_name, "inputs": source,
             "latency_batch": opt[0], "passed": result["passed"], **result}
    bundle.record_check(check)
    bundle.save()
    return check
