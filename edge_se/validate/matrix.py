"""The validation matrix: every precision x policy x backend of a bundle against PyTorch.

For each artifact (those in the bundle, and the FP16/INT8 variants it is asked for and lacks,
written under ``OUT/artifacts/`` so the bundle itself is never changed) it measures

* numerics per output against the PyTorch reference, with the precision's tolerance;
* task accuracy when labels exist (``--digits``: the trained digits nets on digits-hard; an
  image folder with class sub-folders; or a labels file);
* latency (p50/p90/p99, throughput) at each batch size through the embedded runtime;
* attention fidelity per block (:mod:`edge_se.validate.fidelity`);

and writes ``report.json``, ``report.md``, ``report.html`` and ``accuracy_vs_latency.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_se.errors import EdgeSEError, InputError, MissingDependencyError
from edge_se.manifest import ONNX, TENSORRT_ENGINE, TRT_QDQ_ARTIFACT
from edge_se.runtime.cli_args import check_choices
from edge_se.runtime.source import BACKEND_PRECISIONS as RUNTIME_PRECISIONS, PRECISIONS
from edge_se.validate.eval_data import EvalData, evaluation_data
from edge_se.validate.stage_variants import Variant, kept_info, made_by_stage

POLICIES = ("all", "keep-gates", "auto")
BACKENDS = ("ort", "ov", "trt", "torchscript", "pt2", "aoti", "et")
RUNTIME_BACKEND = {"ort": "onnxruntime", "ov": "openvino", "trt": "tensorrt", "torchscript": "torchscript",
                   "pt2": "pt2", "aoti": "aoti", "et": "executorch"}
#: the PyTorch-side files: each backend runs the bundle's FP32 file of its kind, when the bundle has one
TORCH_FILES = {"torchscript": "model.ts", "pt2": "model.pt2", "aoti": "model.aoti.pt2", "et": "model.pte"}
#: precisions a backend runs in the matrix (bf16 is OpenVINO's, on the FP32 file; the others run every file)
BACKEND_PRECISIONS = {"ov": RUNTIME_PRECISIONS["openvino"], **{b: ("fp32",) for b in TORCH_FILES}}
FIDELITY_SAMPLES = 64
CHUNK = 64


# -- variants ----------------------------------------------------------------------------


def _bundle_artifact(bundle, precision: str, policy: str | None) -> tuple[str, Path] | None:
    """The bundle's ONNX artifact for the ONNX Runtime at ``precision`` (and ``policy``), if any."""
    for name in bundle.artifacts:
        rec = bundle.record(name)
        if rec.format != ONNX or rec.precision != precision:
            continue
        if precision == "int8" and (name != "model.int8.cpu.onnx" and rec.backend not in ("cpu", "onnxruntime")):
            continue
        if policy is not None and (rec.policy or "all") != policy:
            continue
        return name, bundle.verify(name)
    return None


def make_variants(bundle, precisions, policies, data: EvalData, workdir: Path, reference: Any = None
                  ) -> tuple[list[Variant], list[str]]:
    """The artifacts to measure: the bundle's, plus FP16/INT8 files it lacks, made by the quantize
    stage itself (:mod:`edge_se.validate.stage_variants`)."""
    notes: list[str] = []
    fp32 = _bundle_artifact(bundle, "fp32", None)
    if fp32 is None:
        raise InputError(f"bundle {bundle.root} has no FP32 ONNX artifact (model.onnx); re-export it")
    variants: list[Variant] = []
    if "fp32" in precisions:
        variants.append(Variant("fp32", "-", fp32[1], False, fp32[0]))
    if "bf16" in precisions:  # the FP32 file, computed in BF16 (OpenVINO rows only)
        variants.append(Variant("bf16", "-", fp32[1], False, fp32[0]))
    art_dir = workdir / "artifacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    # (precision, policy) -> the bundle's own file, else made below by the quantize stage
    wanted = ([("fp16", "-")] if "fp16" in precisions else []) + [("int8", p) for p in policies if "int8" in precisions]
    own = {key: _bundle_artifact(bundle, key[0], None if key[0] == "fp16" else key[1]) for key in wanted}
    missing = [key for key in wanted if own[key] is None]
    made: dict[tuple[str, str], Variant] = {}
    if missing:
        outcomes, made_notes = made_by_stage(bundle, ("fp16", "-") in missing, [p for q, p in missing if q == "int8"],
                                             data, art_dir, reference)
        made = {(v.precision, v.policy): v for v in outcomes}
        notes += made_notes
    for key in wanted:
        if own[key] is not None:
            name, path = own[key]
            info = kept_info(bundle.record(name).decision) if key[0] == "int8" else {}
            variants.append(Variant(*key, path, False, name, info))
        else:
            variants.append(made[key])
    if "int8" in precisions:
        trt = bundle.record(TRT_QDQ_ARTIFACT) if TRT_QDQ_ARTIFACT in bundle.artifacts else None
        if trt is not None and trt.format == ONNX:
            # the TensorRT-ready QDQ file also runs on ONNX Runtime: its accuracy, measured here,
            # is what the TensorRT engine built from it should reach
            variants.append(Variant("int8", f"{trt.policy or 'all'} [trt-qdq]", bundle.verify(TRT_QDQ_ARTIFACT),
                                    False, TRT_QDQ_ARTIFACT, kept_info(trt.decision)))
    return variants, notes


# -- measurements ------------------------------------------------------------------------


def _runtime(path: Path, backend: str, spec, threads: int | None, bundle_root: Path | None = None,
             artifact: str | None = None, precision: str | None = None):
    """The embedded runtime on a bundle artifact (its manifest record gives the I/O specs), or
    on a file this report created; ``precision`` only for bf16 (a compute precision)."""
    from edge_se.runtime import core

    compute = precision if precision == "bf16" else None
    if bundle_root is not None and artifact is not None:
        return core.Runtime.load(bundle_root, RUNTIME_BACKEND[backend], artifact=artifact, threads=threads,
                                 precision=compute)
    return core.Runtime.load(path, RUNTIME_BACKEND[backend], preprocessing=spec, verify=False, threads=threads,
                             precision=compute)


def _predict(rt, x: np.ndarray) -> list[np.ndarray]:
    parts = [rt.run(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
    names = list(parts[0])
    return [np.concatenate([p[n] for p in parts]).astype(np.float32) for n in names]


def measure_latency(rt, x: np.ndarray, batch: int, seconds: float) -> dict[str, Any]:
    """p50/p90/p99 and throughput of ``rt.run`` at ``batch`` (the runtime's bench loop)."""
    from edge_se.runtime.latency import measure

    reps = int(np.ceil(batch / len(x)))
    feeds = {rt.inputs[0].name: np.ascontiguousarray(np.concatenate([x] * reps)[:batch])}
    rt.run(feeds)  # warm-up at this batch size
    return measure(rt, feeds, seconds)


def top5_agreement(ref: np.ndarray, got: np.ndarray) -> float | None:
    """Fraction of samples whose reference top-1 class is in the artifact's top 5 (2-D outputs
    with more than 5 classes; else ``None``). Reported, not enforced."""
    if ref.ndim != 2 or ref.shape[1] <= 5 or ref.shape != got.shape:
        return None
    top5 = np.argsort(-got, axis=1)[:, :5]
    return float(np.mean((top5 == ref.argmax(1)[:, None]).any(1)))


def _accuracy(logits: np.ndarray, y: np.ndarray | None) -> float | None:
    return None if y is None else float(np.mean(logits.argmax(1) == y))


def _torch_outputs(module, x: np.ndarray) -> list[np.ndarray]:
    from edge_se.reference.check import run_batched, torch_runner

    return run_batched(torch_runner(module), x, CHUNK)


def evaluate_variant(
    v: Variant, backend: str, *, spec, data: EvalData, ref: list[np.ndarray], out_names, torch_gates, fp32_path: Path,
    batch_sizes: Sequence[int], latency_seconds: float, workdir: Path, threads: int | None, torch_paths: dict[str, Path],
    ref_accuracy: float | None, engine_path: Path | None = None, bundle_root: Path | None = None,
) -> dict[str, Any]:
    """All numbers for one (artifact, backend)."""
    from edge_se.validate.fidelity import attention_fidelity
    from edge_se.reference.numerics import compare_outputs

    row: dict[str, Any] = {"precision": v.precision, "policy": v.policy, "backend": backend, "artifact": v.artifact,
                           "path": str(v.path), "created_for_report": v.created, **v.info}
    path = {**torch_paths, "trt": engine_path}.get(backend) or v.path
    row["path"] = str(path)
    artifact = None if v.created else (path.name if backend not in ("ort", "ov") else v.artifact)
    rt = _runtime(path, backend, spec, threads, bundle_root, artifact, v.precision)
    row["runtime"] = {k: val for k, val in rt.describe().items()
                      if k in ("backend", "version", "providers", "intra_op_threads", "threads", "inference_precision",
                               "notes")}
    got = _predict(rt, data.x)
    row["numerics"] = compare_outputs(ref, got, v.precision, names=out_names)
    for out, r, g in zip(row["numerics"].get("outputs", []), ref, got):
        out["top5_agreement"] = top5_agreement(r, g)
    row["accuracy"] = _accuracy(got[0], data.y)
    row["accuracy_drop"] = None if row["accuracy"] is None or ref_accuracy is None else row["accuracy"] - ref_accuracy
    row["latency"] = {str(b): measure_latency(rt, data.x, b, latency_seconds) for b in batch_sizes}
    rt.close()
    if backend == "ort":
        fx = data.x[:FIDELITY_SAMPLES]
        row["fidelity"] = attention_fidelity(v.path, fx, workdir / "debug" / f"{v.precision}-{v.policy}",
                                             torch_reference=torch_gates, reference_onnx=fp32_path)
    else:
        row["fidelity"] = {"blocks": [], "worst": None,
                           "notes": [f"{backend}: gates are measured on the ONNX Runtime rows (no ONNX graph to expose them from)"]}
    return row


def _backend_available(backend: str, precision: str) -> str | None:
    """``None`` when usable here (at ``precision``), else the reason."""
    from edge_se.runtime.backends import probe

    need = {"trt": probe.require_tensorrt, "ov": probe.require_openvino}.get(backend)
    if backend == "et":
        from edge_se.runtime.backends.executorch import require_executorch as need
    try:
        if need is not None:
            need()
        if backend == "ov" and precision == "bf16":
            import openvino

            from edge_se.runtime.backends.openvino import check_bf16

            check_bf16(openvino.Core())
    except MissingDependencyError as e:
        return str(e)
    return None


def _engine_for(bundle, precision: str) -> Path | None:
    """A TensorRT engine of the bundle at ``precision`` (built by ``edge-se build``), if any."""
    for name in bundle.artifacts:
        rec = bundle.record(name)
        if rec.format == TENSORRT_ENGINE and rec.precision == precision:
            return bundle.verify(name)
    return None


# -- the matrix --------------------------------------------------------------------------


def run_matrix(
    bundle_dir: str | Path,
    *,
    images: str | Path | None = None,
    labels: str | Path | None = None,
    digits: bool = False,
    precisions: Sequence[str] = PRECISIONS,
    policies: Sequence[str] = POLICIES,
    backends: Sequence[str] = ("ort",),
    out: str | Path | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    limit: int | None = None,
    latency_seconds: float = 2.0,
    threads: int | None = None,
    seed: int = 0,
    reference: Any = None,
) -> dict[str, Any]:
    """Measure every precision x policy x backend of the bundle; write the report to ``out``.

    ``out`` defaults to ``<bundle>/report``. Returns the report dict (``report["passed"]`` is
    False when any artifact fails its numerics or could not be measured).
    """
    from edge_se import progress
    from edge_se.bundle import Bundle, utc_now
    from edge_se.quantize.patterns import find_attention_gates
    from edge_se.report.machine import machine_info, tool_versions
    from edge_se.report.render import REPORT_FORMAT, render_report
    from edge_se.reference.check import run_batched
    from edge_se.validate.fidelity import onnx_reference_gates, torch_reference_gates
    from edge_se.reference.rebuild import is_onnx_import, reference_module, reference_runner

    check_choices(precisions, PRECISIONS, "--precisions")
    check_choices(policies, POLICIES, "--policies")
    check_choices(backends, BACKENDS, "--backends")
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise InputError(f"--batch-sizes must be positive integers, got {list(batch_sizes)}")
    if latency_seconds <= 0:
        raise InputError(f"--latency-seconds must be above 0, got {latency_seconds}")
    for flag, value in (("--limit", limit), ("--threads", threads)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be a positive integer, got {value}")
    bundle = Bundle.open(bundle_dir)
    model = bundle.model()
    if not model.dynamic_batch:
        raise InputError(f"bundle {bundle.root} has a static batch of {model.input_shape[0]}; the matrix "
                         "measures batches of its own size (--batch-sizes, fidelity chunks): re-export without "
                         "--static-batch (a TensorRT recipe still fixes the engine's batch)")
    out_dir = Path(out) if out is not None else bundle.root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = bundle.preprocessing()
    t0 = time.perf_counter()
    from_onnx = is_onnx_import(bundle)
    with progress.stage(f"Loading the {'ONNX Runtime' if from_onnx else 'PyTorch'} reference and the data"):
        data = evaluation_data(bundle, spec, images=images, labels=labels, digits=digits, limit=limit, seed=seed)
        if from_onnx:  # no PyTorch model: ONNX Runtime FP32 on the imported file
            module = None
            run_ref, ref_desc = reference_runner(bundle, reference)
            ref = run_batched(run_ref, data.x, CHUNK)
        else:
            module = reference_module(bundle, reference)
            ref_desc = f"PyTorch ({model.spec})"
            ref = _torch_outputs(module, data.x)
    ref_accuracy = _accuracy(ref[0], data.y)
    with progress.stage("Preparing the artifacts"):
        variants, notes = make_variants(bundle, precisions, policies, data, out_dir, reference)
    fp32_path = bundle.verify("model.onnx") if "model.onnx" in bundle.artifacts else variants[0].path
    torch_gates = (onnx_reference_gates(fp32_path, data.x[:FIDELITY_SAMPLES], out_dir / "debug") if module is None
                   else torch_reference_gates(module, fp32_path, data.x[:FIDELITY_SAMPLES]))
    gates = find_attention_gates(fp32_path)
    onnx_outputs = bundle.record("model.onnx").outputs if "model.onnx" in bundle.artifacts else None
    out_names = [t.name for t in onnx_outputs or ()] or None
    torch_paths = {b: bundle.verify(f) for b, f in TORCH_FILES.items() if f in bundle.artifacts}
    rows = []
    jobs = [(v, b) for b in backends for v in variants]
    for v, backend in progress.track(jobs, "Measuring precision x policy x backend"):
        if v.precision not in BACKEND_PRECISIONS.get(backend, ("fp32", "fp16", "int8")):
            continue  # bf16 is OpenVINO's; OpenVINO runs no FP16 file; the torch files are FP32 only
        if v.error is not None:  # the quantize stage refused to make this file: a failed row
            rows.append({"precision": v.precision, "policy": v.policy, "backend": backend, "artifact": v.artifact,
                         "error": v.error})
            continue
        reason = _backend_available(backend, v.precision)
        if reason is None and backend in TORCH_FILES and backend not in torch_paths:
            continue  # the bundle has no file of this kind (--formats at export)
        engine = None
        if reason is None and backend == "trt":
            engine = _engine_for(bundle, v.precision)
            if engine is None or v.policy not in ("-", "all"):
                reason = f"no {v.precision} TensorRT engine in the bundle for policy {v.policy}; build one with 'edge-se build'"
        if reason is not None:
            rows.append({"precision": v.precision, "policy": v.policy, "backend": backend, "artifact": v.artifact,
                         "error": f"skipped: {reason}", "skipped": True})
            continue
        try:
            rows.append(evaluate_variant(
                v, backend, spec=spec, data=data, ref=ref, out_names=out_names, torch_gates=torch_gates,
                fp32_path=fp32_path, batch_sizes=[int(b) for b in batch_sizes], latency_seconds=latency_seconds,
                workdir=out_dir, threads=threads, torch_paths=torch_paths, ref_accuracy=ref_accuracy,
                engine_path=engine, bundle_root=bundle.root,
            ))
        except EdgeSEError as e:  # one artifact that cannot run must not hide the others' numbers
            rows.append({"precision": v.precision, "policy": v.policy, "backend": backend, "artifact": v.artifact,
                         "error": str(e)})
    measured = [r for r in rows if not r.get("skipped")]
    passed = bool(measured) and all((r.get("numerics") or {}).get("passed") for r in measured)
    report = {
        "format": REPORT_FORMAT,
        "version": 1,
        "created": utc_now(),
        "bundle": str(bundle.root),
        "model": bundle.manifest.get("model", {}),
        "machine": machine_info(),
        "tools": tool_versions(),
        "bundle_tools": bundle.manifest.get("tools", {}),
        "settings": {"precisions": list(precisions), "policies": list(policies), "backends": list(backends),
                     "latency_seconds": latency_seconds, "threads": threads, "seed": seed,
                     "fidelity_samples": min(FIDELITY_SAMPLES, len(data.x))},
        "batch_sizes": [int(b) for b in batch_sizes],
        "data": {"description": data.description, "samples": int(len(data.x)), "labels": data.y is not None},
        "reference": {"backend": "onnxruntime" if from_onnx else "pytorch", "description": ref_desc,
                      "accuracy": ref_accuracy},
        "attention_blocks": [{**g.to_dict(), "nodes": len(g.nodes)} for g in gates],
        "rows": rows,
        "passed": passed,
        "seconds": round(time.perf_counter() - t0, 1),
        "notes": notes,
    }
    report["files"] = {k: str(p) for k, p in render_report(report, out_dir).items()}
    return report
