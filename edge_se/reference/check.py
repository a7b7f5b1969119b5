"""Run an artifact and the PyTorch reference on the same inputs and judge the difference.

Inputs are real images (scikit-learn's sample photos, or the user's ``--images``) plus seeded
noise (the export's FP32 check adds the noise scaled by 0.1 and 10 and negated); each is run at
batch 1 and, for dynamic-batch artifacts, at a second batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_se.errors import ExportError
from edge_se.preprocess import PreprocessSpec
from edge_se.reference.inputs import SCALES, random_inputs, real_inputs, scaled_inputs
from edge_se.reference.numerics import compare_outputs

N_REAL = 4
N_RANDOM = 2
#: input sets outside any calibration distribution: INT8 results on them are reported, not enforced
OUT_OF_DISTRIBUTION = ("random", "scaled")
SECOND_BATCH = 4


def validation_inputs(
    spec: PreprocessSpec, shape: Sequence[int], images: str | Path | None = None, seed: int = 0,
    scaled: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Named input sets (``real``, ``random``) and a description of each, for the manifest.

    ``scaled`` adds a ``scaled`` set: the first noise input times 0.1, 10 and -1, so a branch on
    the input's sign or scale that a trace froze is exercised (the FP32 export check uses it).
    """
    real, where = real_inputs(spec, N_REAL, images=images, seed=seed)
    rnd = random_inputs((N_RANDOM, *shape[1:]), seed=seed)
    sets = {"real": real, "random": rnd}
    descs = {"real": where, "random": f"{N_RANDOM} seeded N(0,1) inputs (seed {seed})"}
    if scaled:
        sets["scaled"] = scaled_inputs(rnd[0])
        descs["scaled"] = f"the first random input times {', '.join(f'{s:g}' for s in SCALES)}"
    return sets, descs


def ort_session(path: Path | Any, threads: int | None = None):
    """A CPU ONNX Runtime session on a file or an in-memory ``ModelProto``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    src = path.SerializeToString() if hasattr(path, "SerializeToString") else str(path)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_batched(fn, x: np.ndarray, batch: int, fixed: bool = False) -> list[np.ndarray]:
    """Run ``fn(batch_array) -> list[array]`` over ``x`` in chunks of ``batch``; concatenate.

    ``fixed``: the model takes exactly ``batch`` samples (a static batch), so a short last chunk is
    padded with copies of its last sample and their outputs are dropped.
    """
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if fixed and n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
            outs.append([o[:n] for o in fn(chunk)])
        else:
            outs.append(fn(chunk))
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def load_torchscript(path: Path):
    """``torch.jit.load`` without its deprecation warning (TorchScript files are code-like: trusted only)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def as_numpy(out) -> list[np.ndarray]:
    """A model output (tensor, or tuple/list/dict of them, dicts in key order) as a flat list of arrays."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in as_numpy(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in as_numpy(out[k])]
    raise ExportError(f"model output of type {type(out).__name__} is not a tensor, tuple or dict of tensors")


def torch_runner(module):
    """``fn(x) -> list[np.ndarray]`` for an eager or TorchScript module."""
    import torch

    def fn(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return as_numpy(module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))))

    return fn


def torch_format_runner(path: Path, name: str, record: dict[str, Any]):
    """``(fn, backend)`` for a torch.export / AOTInductor / ExecuTorch artifact, run by its runtime backend."""
    from edge_se.runtime.core import torch_file_runner
    from edge_se.runtime.source import Source, file_kind

    backend = file_kind(name) or "pt2"
    source = Source(backend, path, artifact=name, record=record)
    inputs, outputs = source.manifest_specs("inputs"), source.manifest_specs("outputs")
    runner = torch_file_runner(backend, path, record, inputs, outputs)

    def fn(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in runner.infer({inputs[0].name: x})]

    return fn, backend


def ort_runner(path: Path | Any):
    """``fn(x) -> list[np.ndarray]`` for an ONNX file (or ``ModelProto``) on ORT CPU.

    Casts to the input's dtype; a model with a fixed batch N runs any batch in chunks of N.
    """
    sess = ort_session(path)
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    fixed = inp.shape[0] if inp.shape and isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in sess.run(None, {inp.name: x.astype(dtype)})]

    if fixed is None:
        return run
    return lambda x: run(x) if len(x) == fixed else run_batched(run, x, fixed, fixed=True)


def reference_outputs(reference_fn, inputs: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The reference's outputs for every input set (computed once, shared by all artifacts)."""
    return {name: run_batched(reference_fn, x, SECOND_BATCH) for name, x in inputs.items()}


def check_numerics(
    artifact: str,
    run_fn,
    reference: dict[str, list[np.ndarray]],
    inputs: dict[str, np.ndarray],
    descriptions: dict[str, str],
    precision: str,
    dynamic_batch: bool,
    output_names: Sequence[str] | None = None,
    backend: str = "onnxruntime-cpu",
    static_batch: int = 1,
) -> list[dict[str, Any]]:
    """One check per (input set, batch size): metrics, verdict and the rule's thresholds.

    ``reference`` comes from :func:`reference_outputs` on the same ``inputs``; a static-batch
    artifact (``dynamic_batch`` false) is run at its own ``static_batch``.
    """
    checks = []
    batches = [1, SECOND_BATCH] if dynamic_batch else [static_batch]
    for set_name, x in inputs.items():
        ref = reference[set_name]
        for b in batches:
            got = run_batched(run_fn, x, b, fixed=not dynamic_batch)
            result = compare_outputs(ref, got, precision, names=output_names)
            if precision == "int8" and set_name in OUT_OF_DISTRIBUTION:
                # INT8 ranges are calibrated on the data; noise far outside them clips by design
                result = {**result, "enforced": False, "passed": True, "measured_reason": result["reason"],
                          "reason": "", "note": "reported, not enforced: INT8 is judged on in-distribution inputs"}
            checks.append(
                {
                    "name": f"numerics/{set_name}/batch{b}",
                    "artifact": artifact,
                    "precision": precision,
                    "backend": backend,
                    "inputs": descriptions[set_name],
                    "batch": b,
                    **result,
                }
            )
    return checks


def failed_summary(checks: list[dict[str, Any]]) -> str:
    """One line naming each failed check and why."""
    return "; ".join(f"{c['artifact']} {c['name']}: {c.get('reason') or 'failed'}" for c in checks if not c["passed"])
