"""The quantize stage: bundle -> bundle, adding FP16 or INT8 artifacts and their checks.

INT8 writes, from ONE calibration run (one set of ranges):

* ``model.int8.trt.onnx``: TensorRT-ready QDQ (symmetric INT8, per-channel weights);
* ``model.int8.cpu.onnx``: CPU-fast INT8 for ONNX Runtime (U8 activations, S8 weights);
* ``model.int8.calib.cache``: TensorRT calibration cache (+ ``model.int8.ranges.json``, the
  ranges themselves) for implicit-INT8 builds of ``model.onnx`` on TensorRT 8.x.

FP16 writes ``model.fp16.onnx``. Every artifact is written into a hidden staging folder inside
the bundle, validated against the PyTorch reference (FP32 ONNX when the model cannot be rebuilt),
and moved into place only when every check passes; then the manifest is saved. A failed check
raises :class:`CheckFailed` (exit 1) and leaves neither the files nor manifest entries behind.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_se import progress
from edge_se.bundle import Bundle, owned_mkdtemp, sweep_temp
from edge_se.errors import BundleError, CalibrationError, CheckFailed, InputError, UntrustedCodeError
from edge_se.manifest import ONNX, TENSORRT_CALIBRATION_CACHE, TRT_QDQ_ARTIFACT
from edge_se.quantize.flavours import DEFAULT_WEIGHT_ROUNDING
from edge_se.quantize.ranges import DEFAULT_PERCENTILE, METHODS

PRECISIONS = ("fp16", "int8")
#: measured for each INT8 file among minmax, mse and percentile 99.999 (flavours.choose_ranges)
DEFAULT_METHOD = "auto"
RANGE_METHODS = ("auto",) + METHODS
DEFAULT_POLICY = "auto"
FP16_ARTIFACT = "model.fp16.onnx"
TRT_ARTIFACT = TRT_QDQ_ARTIFACT
CPU_ARTIFACT = "model.int8.cpu.onnx"
CACHE_ARTIFACT = "model.int8.calib.cache"
RANGES_FILE = "model.int8.ranges.json"
N_NUMERICS = 64  # calibration-distribution samples used for the INT8 numerics check


# ------------------------------------------------------------------------------ helpers
def _fp32_onnx(bundle: Bundle) -> Path:
    if "model.onnx" not in bundle.artifacts:
        have = ", ".join(sorted(bundle.artifacts)) or "none"
        raise BundleError(
            f"bundle {bundle.root} has no FP32 ONNX artifact 'model.onnx' (it has: {have}); "
            "create it with 'edge-se export MODEL --out DIR'"
        )
    return bundle.verify("model.onnx")


def named_copy(fp32: Path, out: Path) -> Path:
    """A self-contained copy of the FP32 model whose every node has a name (quantizers exclude by
    name). Tensor names are unchanged, so ranges and the TensorRT cache refer to model.onnx."""
    import onnx

    model = onnx.load(str(fp32))
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}#{i}"
    onnx.save_model(model, str(out))
    return out


def _reference(bundle: Bundle, fp32: Path, options: Any = None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The bundle's reference (PyTorch, or ONNX Runtime on an imported ONNX file), else the FP32 ONNX."""
    from edge_se.quantize.metrics import run_onnx

    try:
        from edge_se.reference.check import run_batched
        from edge_se.reference.rebuild import reference_runner

        run, desc = reference_runner(bundle, options)

        def ref_fn(x: np.ndarray) -> np.ndarray:
            from edge_se.quantize.memory import eval_batch

            return run_batched(run, x, eval_batch())[0]

        return ref_fn, desc
    except Exception as e:  # noqa: BLE001 - any failure to rebuild falls back, and says why
        reason = f"{type(e).__name__}: {e}"
        if isinstance(e, UntrustedCodeError):
            progress.info("[yellow]note[/yellow]: validating against the FP32 ONNX: this bundle was exported from a "
                          "user file; pass --model FILE.py:factory to validate against PyTorch")
        return (lambda x: run_onnx(fp32, x)), f"FP32 ONNX model.onnx (PyTorch model not rebuilt: {reason[:120]})"


def _onnx_run(path: Path) -> Callable[[np.ndarray, int], np.ndarray]:
    """``run(x, batch)``: ``path`` on ONNX Runtime's CPU provider, ``batch`` samples a call."""
    from edge_se.quantize.metrics import run_onnx

    return lambda x, batch: run_onnx(path, x, batch=batch)


def _numerics_checks(
    artifact: str, run: Callable[[np.ndarray, int], np.ndarray], ref_fn, ref_desc: str,
    inputs: dict[str, tuple[np.ndarray, str]], precision: str, backend: str = "onnxruntime-cpu",
) -> list[dict[str, Any]]:
    """Numerics of ``run(x, batch)`` against ``ref_fn`` on each input set, at batch 1 and 4."""
    from edge_se.reference.numerics import compare_outputs

    checks = []
    for set_name, (x, desc) in inputs.items():
        ref = ref_fn(x)
        for batch in (1, 4):
            got = run(x, batch)
            result = compare_outputs([ref], [got], precision, names=["output0"])
            checks.append({
                "name": f"numerics/{set_name}/batch{batch}", "artifact": artifact, "precision": precision,
                "backend": backend, "reference": ref_desc, "inputs": desc, "batch": batch, **result,
            })
    return checks


def _accuracy_check(artifact: str, got: np.ndarray, ref: np.ndarray, labels: np.ndarray | None, desc: str) -> dict:
    """Task metrics of the outputs ``got`` against the FP32 ONNX outputs ``ref`` (recorded; not enforced)."""
    from edge_se.reference.metrics import logit_metrics

    m = logit_metrics(ref, got, labels)
    return {"name": "accuracy", "artifact": artifact, "inputs": desc, "enforced": False, "passed": True,
            "reason": "", **m}


def _io(bundle: Bundle) -> dict[str, Any]:
    rec = bundle.artifact("model.onnx")
    return {"inputs": rec.get("inputs"), "outputs": rec.get("outputs"), "opset": rec.get("opset")}


# ------------------------------------------------------------------------------- FP16
def _dynamic_batch_only(bundle: Bundle, what: str) -> None:
    """Quantization runs batches of its own size, which a static-batch ONNX refuses."""
    model = bundle.section("model")
    if not model["dynamic_batch"]:
        raise InputError(f"bundle {bundle.root} has a static batch of {model['input_shape'][0]}; {what} runs batches "
                         "of its own size: re-export without --static-batch (a TensorRT recipe still fixes the "
                         "engine's batch)")


def quantize_fp16(
    bundle: Bundle, *, keep_io_types: bool = True, images: str | Path | None = None, reference: Any = None
) -> Bundle:
    """Add ``model.fp16.onnx`` to ``bundle`` after checking it against PyTorch (FP16 tolerances).

    Holds the bundle's lock throughout; the artifact and the manifest are published in one step.
    """
    _dynamic_batch_only(bundle, "FP16 validation")
    with bundle.writing():
        return _quantize_fp16(bundle, keep_io_types=keep_io_types, images=images, reference=reference)


def _quantize_fp16(bundle: Bundle, *, keep_io_types: bool, images: str | Path | None, reference: Any) -> Bundle:
    from edge_se.quantize.fp16 import convert_fp16
    from edge_se.reference.check import validation_inputs

    fp32 = _fp32_onnx(bundle)
    staging = owned_mkdtemp(".quantize-", bundle.root)
    try:
        with progress.stage("Converting to FP16"):
            info = convert_fp16(fp32, staging / FP16_ARTIFACT, keep_io_types=keep_io_types)
        spec = bundle.preprocessing()
        shape = bundle.section("model")["input_shape"]
        sets, descs = validation_inputs(spec, shape, images=images, seed=bundle.section("model").get("seed", 0))
        with progress.stage("Validating FP16 against the reference"):
            ref_fn, ref_desc = _reference(bundle, fp32, reference)
            checks = _numerics_checks(FP16_ARTIFACT, _onnx_run(staging / FP16_ARTIFACT), ref_fn, ref_desc,
                                      {k: (v, descs[k]) for k, v in sets.items()}, "fp16")
        _fail_if_any(checks)
        io = _io(bundle)
        if not keep_io_types:
            for spec_list in (io["inputs"], io["outputs"]):
                for t in spec_list or []:
                    t["dtype"] = "float16"
        with bundle.publishing(staging, [FP16_ARTIFACT]):
            bundle.add_artifact(FP16_ARTIFACT, stage="quantize", format=ONNX, precision="fp16", backend="onnxruntime",
                                policy="fp32-ops-by-rule", source="model.onnx", fp16=info, **io)
            for c in checks:
                bundle.record_check(c)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


def _fail_if_any(checks: list[dict[str, Any]]) -> None:
    failed = [c for c in checks if not c["passed"]]
    if failed:
        why = "; ".join(f"{c['artifact']} {c['name']}: {c['reason']}" for c in failed[:4])
        raise CheckFailed(f"validation failed, nothing was added to the bundle: {why}")


# ------------------------------------------------------------------------------- INT8
def quantize_int8(
    bundle: Bundle,
    calibration: Any,
    *,
    policy: str = DEFAULT_POLICY,
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
    max_drop: float | None = None,
    min_agreement: float | None = None,
    min_int8: float | None = None,
    evaluation: Any = None,
    reduce_range: bool | None = None,
    trt_version: str = "8601",
    weight_rounding: str = DEFAULT_WEIGHT_ROUNDING,
    reference: Any = None,
    finetune: bool = False,
    finetune_epochs: int | None = None,
    max_memory: int | None = None,
    pte: bool = False,
) -> Bundle:
    """Add the two INT8 flavours and the TensorRT cache to ``bundle`` from one calibration run.

    ``calibration``/``evaluation`` are :class:`~edge_se.calibration.dataset.CalibrationSet`\\ s
    (``evaluation``, optional and labelled, is where ``auto`` measures its budget and where task
    accuracy is reported; else the calibration set is used). ``max_drop`` (points, on labels),
    ``min_agreement`` (%) and ``min_int8`` (fraction of MACs) make ``auto``'s
    :class:`~edge_se.quantize.policies.Budget`. ``weight_rounding``: ``gptq`` (error-compensating,
    from the calibration set; default) or ``nearest``. ``finetune``: quantization-aware distillation
    of both Q/DQ files towards FP32 on the calibration images (:mod:`edge_se.quantize.qad`).
    ``max_memory`` (bytes; default half of the memory available) bounds the run: batch sizes are
    chosen to fit (:mod:`edge_se.quantize.memory`), and a limit one sample does not fit in raises
    :class:`~edge_se.quantize.memory.MemoryLimitError` (exit 2) before anything runs. ``pte``: also
    ``model.int8.pte``, ExecuTorch INT8 quantized from ``model.pt2`` on the same calibration set
    (:mod:`edge_se.quantize.pte_int8`; needs the executorch extra). ``reduce_range`` (7-bit weights
    in the CPU file): ``None`` decides from this CPU (:func:`edge_se.runtime.cpu.int8_saturation_risk`).
    """
    _dynamic_batch_only(bundle, "INT8 calibration")
    risk = None
    if reduce_range is None:  # auto: 7-bit CPU weights where this CPU's INT8 kernels would saturate
        from edge_se.runtime.cpu import int8_saturation_risk

        risk = int8_saturation_risk()
        reduce_range = risk is not None
    with bundle.writing():
        result = _quantize_int8(bundle, calibration, policy=policy, method=method, percentile=percentile,
                                budget=_budget(policy, max_drop, min_agreement, min_int8), evaluation=evaluation,
                                reduce_range=reduce_range, trt_version=trt_version, weight_rounding=weight_rounding,
                                reference=reference, finetune=finetune, finetune_epochs=finetune_epochs,
                                max_memory=max_memory, pte=pte)
    if risk:
        progress.info(f"[yellow]note[/yellow]: {risk}: the CPU INT8 file got 7-bit weights (reduce_range); pass "
                      "--no-reduce-range for 8-bit weights meant for VNNI or ARM CPUs")
    return result


def _budget(policy: str, max_drop: float | None, min_agreement: float | None, min_int8: float | None) -> Any:
    """``auto``'s budget from the options given (``None``: the default); refused for other policies."""
    from edge_se.quantize import policies

    given = {k: float(v) for k, v in (("max_drop", max_drop), ("min_agreement", min_agreement), ("min_int8", min_int8))
             if v is not None}
    if given and policy != "auto":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InputError(f"{flags} apply to --policy auto only, not {policy!r}; drop them or use --policy auto")
    return policies.Budget(**given).check()


def _quantize_int8(bundle: Bundle, calibration: Any, *, policy: str, method: str, percentile: float,
                   budget: Any, evaluation: Any, reduce_range: bool, trt_version: str,
                   weight_rounding: str, reference: Any, finetune: bool = False,
                   finetune_epochs: int | None = None, max_memory: int | None = None, pte: bool = False) -> Bundle:
    from edge_se.calibration.dataset import check_matches
    from edge_se.quantize import policies
    from edge_se.quantize import flavours, memory

    flavours.check_weight_rounding(weight_rounding)
    if method not in RANGE_METHODS:
        raise InputError(f"unknown calibration method {method!r}; expected one of {', '.join(RANGE_METHODS)}")
    policies.check_policy(policy)
    fp32 = _fp32_onnx(bundle)
    if pte:
        from edge_se.quantize.pte_int8 import check_ready

        check_ready(bundle)
    shape = bundle.section("model")["input_shape"]
    pre = bundle.section("preprocessing")
    check_matches(calibration, shape, pre)
    if evaluation is not None:
        check_matches(evaluation, shape, pre)
    timings: dict[str, float] = {}
    mem = memory.plan(fp32, eval_samples=(evaluation or calibration).count, limit=max_memory,
                      gptq=weight_rounding == "gptq")
    progress.info(mem.describe())
    sweep_temp()
    staging = owned_mkdtemp(".quantize-", bundle.root)
    try:
        with memory.planned(mem):
            _quantize_int8_staged(bundle, calibration, staging, fp32, mem, timings, policy=policy, method=method,
                                  percentile=percentile, budget=budget, evaluation=evaluation,
                                  reduce_range=reduce_range, trt_version=trt_version, weight_rounding=weight_rounding,
                                  reference=reference, finetune=finetune, finetune_epochs=finetune_epochs, pte=pte)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


def _quantize_int8_staged(bundle: Bundle, calibration: Any, staging: Path, fp32: Path, mem: Any,
                          timings: dict[str, float], *, policy: str, method: str, percentile: float, budget: Any,
                          evaluation: Any, reduce_range: bool, trt_version: str, weight_rounding: str, reference: Any,
                          finetune: bool, finetune_epochs: int | None, pte: bool = False) -> None:
    """The INT8 run inside ``staging`` under the memory plan ``mem``; publishes into ``bundle``."""
    from edge_se.quantize import flavours
    from edge_se.quantize import policies
    from edge_se.quantize.metrics import run_onnx
    from edge_se.quantize.ranges import collect_statistics, save_ranges
    from edge_se.quantize.trt_cache import CalibrationCache, write_cache
    from edge_se.quantize.weight_params import WeightParams

    started = time.perf_counter()
    prepared = named_copy(fp32, staging / "prepared.onnx")
    t0 = time.perf_counter()
    with progress.stage(f"Calibrating on {calibration.count} samples ({method})"):
        stats = collect_statistics(prepared, calibration.batches(mem.calib_batch))
    timings["calibrate"] = round(time.perf_counter() - t0, 3)

    eval_x, eval_y, eval_desc = _eval_data(calibration, evaluation)
    eval_ref = run_onnx(prepared, eval_x)  # FP32 on the selection set, shared by every measurement
    if policy == "auto":
        _selection_notes(budget, eval_x, eval_y, evaluation is not None)

    t0 = time.perf_counter()
    with progress.stage(f"Rounding weights ({weight_rounding})"):
        # batches of the plan's GPTQ chunk: one run and one moment update per layer for each
        weights = flavours.rounded_weights(weight_rounding, prepared, calibration.batches(mem.gptq_chunk),
                                           reduce_range=reduce_range)
    timings["round_weights"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    chosen: dict[str, Any] = {}
    params = {fl: WeightParams() for fl in flavours.FLAVOURS}  # weight scales, computed once per file
    if method == "auto":
        with progress.stage("Choosing activation ranges for each INT8 file (minmax, mse, percentile)"):
            for fl in flavours.FLAVOURS:
                chosen[fl] = flavours.choose_ranges(fl, stats, weights[fl], prepared, eval_x,
                                                    reduce_range=reduce_range, ref=eval_ref, params=params[fl])
            progress.info("activation ranges: " + ", ".join(f"{fl} file {c[1]['chosen']}" for fl, c in chosen.items()))
    else:
        fixed = stats.ranges(method, percentile)
        chosen = {fl: (fixed, None) for fl in flavours.FLAVOURS}
    timings["choose_ranges"] = round(time.perf_counter() - t0, 3)
    ranges = chosen["trt"][0]  # the TensorRT cache and ranges.json follow the TensorRT file
    cpu_builder = flavours.builder("cpu", chosen["cpu"][0], weights["cpu"], reduce_range=reduce_range,
                                   params=params["cpu"])
    trt_builder = flavours.builder("trt", ranges, weights["trt"], params=params["trt"])

    t0 = time.perf_counter()
    if policy != "auto":  # all / keep-gates: decided on the graph alone, the same for both files
        decision = policies.decide(policy, prepared)
        decisions = {CPU_ARTIFACT: decision, TRT_ARTIFACT: decision}
    else:  # auto measures each file on its own model: they quantize different tensors
        decisions = {}
        for artifact, builder in ((CPU_ARTIFACT, cpu_builder), (TRT_ARTIFACT, trt_builder)):
            with progress.stage(f"Applying precision policy 'auto' for {artifact}"):
                decisions[artifact] = policies.decide(policy, prepared, builder=builder, x=eval_x, labels=eval_y,
                                                      budget=budget, ref=eval_ref)
            _auto_notes(decisions[artifact], artifact)
    timings["policy"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    with progress.stage("Writing the TensorRT QDQ and CPU INT8 models"):
        trt_info = trt_builder(prepared, staging / TRT_ARTIFACT, decisions[TRT_ARTIFACT].kept_nodes)
        cpu_info = cpu_builder(prepared, staging / CPU_ARTIFACT, decisions[CPU_ARTIFACT].kept_nodes)
        cache = CalibrationCache.from_ranges(ranges, version=trt_version)
        write_cache(staging / CACHE_ARTIFACT, cache)
        save_ranges(ranges, staging / RANGES_FILE)
    timings["quantize"] = round(time.perf_counter() - t0, 3)
    tuned: dict[str, dict[str, Any]] = {}
    if finetune:
        t0 = time.perf_counter()
        tuned = _finetune(prepared, staging, calibration, eval_x, eval_ref, finetune_epochs)
        timings["finetune"] = round(time.perf_counter() - t0, 3)
    pte_record = None
    if pte:
        from edge_se.quantize import pte_int8

        t0 = time.perf_counter()
        with progress.stage("Quantizing model.pt2 (PT2E, XNNPACK quantizer) and lowering to ExecuTorch (minutes)"):
            pte_record = pte_int8.write_int8_pte(bundle, calibration, staging / pte_int8.PTE_INT8_ARTIFACT)
        timings["pte"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    with progress.stage("Validating INT8 against the reference"):
        ref_fn, ref_desc = _reference(bundle, fp32, reference)
        n = min(N_NUMERICS, len(eval_x))
        sets = {"eval": (eval_x[:n], f"first {n} of {eval_desc}")}
        runs: list[tuple[str, Callable[[np.ndarray, int], np.ndarray], str]] = [
            (name, _onnx_run(staging / name), "onnxruntime-cpu") for name in (CPU_ARTIFACT, TRT_ARTIFACT)]
        if pte_record is not None:
            from edge_se.reference.check import run_batched

            fn = pte_int8.runner(staging / pte_int8.PTE_INT8_ARTIFACT, pte_record)
            top = pte_record["batch_range"][1]  # the .pte's static batch: larger batches are split
            runs.append((pte_int8.PTE_INT8_ARTIFACT, lambda x, b: run_batched(fn, x, min(b, top))[0], "executorch"))
        checks = []
        for name, run, backend in runs:
            checks += _numerics_checks(name, run, ref_fn, ref_desc, sets, "int8", backend=backend)
            checks.append(_accuracy_check(name, run(eval_x, mem.eval_batch), eval_ref, eval_y, eval_desc))
    _fail_if_any(checks)
    timings["validate"] = round(time.perf_counter() - t0, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    calib_record = {
        "method": method,
        "params": ranges.params,
        "set_sha256": calibration.sha256,
        "count": calibration.count,
        "set": str(calibration.root),  # a temporary folder when `edge-se quantize` built it from a spec
        "spec": {k: (calibration.manifest.get("spec") or {}).get(k) for k in ("path", "sha256", "description")},
        "source": calibration.manifest.get("source"),
        "tensors": len(ranges.ranges),
        "memory": mem.to_dict(),
    }
    def file_calibration(fl: str) -> dict[str, Any]:
        r, report = chosen[fl]
        label = report["chosen"] if report else method
        return {**calib_record, "method": label, "params": r.params, "tensors": len(r.ranges),
                **({"method_choice": report} if report else {})}

    common = dict(stage="quantize", format=ONNX, precision="int8", policy=policy,
                  weights={"rounding": weight_rounding, "layers_rounded": len(weights["trt"] or {}),
                           "grid": "int8 symmetric per output channel, scale = max|w| / 127"},
                  source="model.onnx", **_io(bundle))
    published = [TRT_ARTIFACT, CPU_ARTIFACT, CACHE_ARTIFACT, RANGES_FILE]
    if pte_record is not None:
        published.append(pte_int8.PTE_INT8_ARTIFACT)
    with bundle.publishing(staging, published):
        extra = {name: ({"finetune": tuned[name]} if name in tuned else {}) for name in (TRT_ARTIFACT, CPU_ARTIFACT)}
        bundle.add_artifact(TRT_ARTIFACT, backend="tensorrt", qdq=trt_info, **extra[TRT_ARTIFACT],
                            calibration=file_calibration("trt"),
                            kept_in_float=decisions[TRT_ARTIFACT].to_dict(),
                            int8={"activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel"},
                            **common)
        cpu_common = common
        if cpu_info.get("reduce_range"):  # rounded on ONNX Runtime's 7-bit grid (gptq.QMAX_REDUCED)
            cpu_common = {**common, "weights": {**common["weights"], "grid": "int8 symmetric per output channel, "
                                                "7-bit (reduce_range): scale = max|w| / 64, q in [-64, 64]"}}
        bundle.add_artifact(CPU_ARTIFACT, backend="onnxruntime", int8=cpu_info, **extra[CPU_ARTIFACT],
                            calibration=file_calibration("cpu"),
                            kept_in_float=decisions[CPU_ARTIFACT].to_dict(), **cpu_common)
        bundle.add_artifact(CACHE_ARTIFACT, stage="quantize", format=TENSORRT_CALIBRATION_CACHE, precision="int8",
                            backend="tensorrt", extra_files=[RANGES_FILE], policy=None, header=cache.header,
                            tensors=len(cache.scales), for_onnx="model.onnx", calibration=file_calibration("trt"))
        if pte_record is not None:
            bundle.add_artifact(pte_int8.PTE_INT8_ARTIFACT, **pte_record)
        bundle.manifest.setdefault("timings", {}).update({f"quantize_{k}": v for k, v in timings.items()})
        for c in checks:
            bundle.record_check(c)


def _finetune(prepared: Path, staging: Path, calibration: Any, eval_x: np.ndarray, eval_ref: np.ndarray,
              epochs: int | None) -> dict[str, dict[str, Any]]:
    """Quantization-aware distillation of both Q/DQ files in ``staging``, in place; per file its
    report (the logit SQNR against FP32 on the evaluation inputs before and after; a file that
    training did not improve is kept as it was)."""
    from edge_se.quantize import qad

    x = calibration.array()
    out: dict[str, dict[str, Any]] = {}
    for name in (CPU_ARTIFACT, TRT_ARTIFACT):
        path = staging / name
        tuned = staging / f"{name}.tuned"
        info = qad.finetune(path, prepared, x, tuned, epochs=epochs or qad.DEFAULT_EPOCHS, check_x=eval_x,
                            check_ref=eval_ref)
        tuned.replace(path)
        c = info["check_sqnr_db"]
        progress.info(f"fine-tuned {name}: logit SQNR {c['before']:.1f} -> {c['after']:.1f} dB on the selection set"
                      f"{'' if info['applied'] else ' (not applied)'}, simulation vs deployed "
                      f"{info['sim_vs_deployed_sqnr_db']['after']:.1f} dB ({info['seconds']:.0f} s)")
        out[name] = info
    return out


def _selection_notes(budget: Any, x: np.ndarray, labels: np.ndarray | None, held_out: bool) -> None:
    """Say where ``auto`` measures, and when the set is too small to resolve the budget."""
    if not held_out:
        progress.info("[yellow]note[/yellow]: policy auto measures its budget on the calibration set itself "
                      "(in-sample, usually easy); pass --eval with a held-out labelled set")
    if labels is None:
        progress.info(f"[yellow]note[/yellow]: the selection set has no labels, so --max-drop {budget.max_drop:g} "
                      f"cannot be judged; auto budgets on agreement with FP32 (--min-agreement {budget.min_agreement:g})")
    needed = budget.samples_to_resolve(labels is not None)
    if len(x) < needed:
        progress.info(f"[yellow]note[/yellow]: {len(x)} samples cannot resolve this budget (it takes {needed} for a "
                      "model without a single changed prediction to be shown inside it); auto keeps a block in "
                      f"float only when its damage is significant on these {len(x)}: pass --eval with at least "
                      f"{needed} samples to hold it to the budget")


def _auto_notes(decision: Any, artifact: str) -> None:
    """Say what ``auto`` chose, and when it missed its budget inside the INT8 floor."""
    d = decision.details
    share = decision.int8_mac_share
    share_s = "?" if share is None else f"{100 * share:.1f} %"
    m = d.get("measured", {})
    progress.info(f"policy auto for {artifact}: {len(decision.kept_blocks)} block(s) in float, {share_s} of the "
                  f"multiply-accumulates in INT8, agreement {m.get('agreement', float('nan')):.2f} % with FP32 "
                  f"on the selection set")
    if not d.get("budget_met", True):
        b = d["budget"]
        progress.info(f"[yellow]note[/yellow]: policy auto could not meet its budget on {artifact} within "
                      f"--min-int8 {b['min_int8']:g} ({'; '.join(d['budget_misses'])}); it keeps the best INT8 model "
                      "it found: a looser --min-agreement/--max-drop, a lower --min-int8 or quantization-aware "
                      "fine-tuning are the ways forward")


def _eval_data(calibration: Any, evaluation: Any) -> tuple[np.ndarray, np.ndarray | None, str]:
    src = evaluation if evaluation is not None else calibration
    x = src.array()
    if len(x) == 0:
        raise CalibrationError(f"set {src.root} holds no samples")
    which = "evaluation set" if evaluation is not None else "calibration set (in-sample)"
    return x, src.labels, f"{len(x)} samples of the {which} {src.root}"


__all__ = ["DEFAULT_METHOD", "DEFAULT_POLICY", "PRECISIONS", "quantize_fp16", "quantize_int8"]
