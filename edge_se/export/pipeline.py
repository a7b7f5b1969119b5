"""The export stage: model spec -> bundle with ``model.ts`` and simplified ``model.onnx``.

Everything is built in a hidden staging folder beside ``out`` and published by one rename after
every check passed; a failed check raises :class:`CheckFailed` and publishes nothing.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Sequence

from rich.markup import escape

from edge_se import progress
from edge_se.bundle import Bundle, atomic_path, atomic_write_text, staged_bundle_dir
from edge_se.manifest import ONNX, TORCHSCRIPT
from edge_se.errors import CheckFailed, ExportError, ImagesError, InputError
from edge_se.export.checks import check_onnx_file, check_shape_size, fp32_onnx_numerics, io_specs, probe_model
from edge_se.export.formats import DEFAULT_MAX_BATCH, plan_formats
from edge_se.export.onnx_export import DEFAULT_OPSET, export_onnx_with_fallback, output_names_for, save_model
from edge_se.export.opset import downconvert_opset, onnx_opset
from edge_se.export.outpath import check_out_path
from edge_se.export.simplify import simplify_model
from edge_se.export.torchscript import export_torchscript
from edge_se.export.tracer import describe, tracer_warning_error
from edge_se.export.trt_ops import DEFAULT_TRT_VERSION, count_ops, op_support
from edge_se.preprocess import PreprocessSpec, list_images
from edge_se.reference.rebuild import state_fingerprint
from edge_se.reference.check import SECOND_BATCH, check_numerics, load_torchscript, failed_summary, torch_runner
from edge_se.export.torch_formats import LOGS, failure_log_path, torch_export_artifacts, validate_torch_formats

#: what the ONNX exporter printed (graph dumps, warnings), kept in the bundle instead of the terminal
EXPORT_LOG = f"{LOGS}/onnx-export.log"

SEED = 0


def tool_versions() -> dict[str, str]:
    """Versions of the tools that made a bundle."""
    import onnx
    import onnxruntime
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__}
    for name in ("torchvision", "onnxslim", "onnxsim", "timm"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # optional tools: absent is fine
            pass
    return versions


def export_bundle(
    model_spec: "str | Any",
    input_shape: Sequence[int] | None,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    images: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    force: bool = False,
    exporter: str = "torchscript",
    simplifier: str = "onnxslim",
    trt_version: str = DEFAULT_TRT_VERSION,
    preprocessing: PreprocessSpec | None = None,
    labels: str | Path | None = None,
    allow_tracer_warnings: bool = False,
    formats: str | Sequence[str] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    model_options: dict[str, Any] | None = None,
) -> Bundle:
    """Export ``model_spec`` to a validated bundle at ``out``; see the module docstring.

    A ``torch.jit.TracerWarning`` from the model's code while tracing or exporting (a branch or
    value frozen at the example input: edge_se/export/tracer.py) fails the export with
    ExportError unless ``allow_tracer_warnings``; then the warnings are recorded in the manifest
    (``model.tracer_warnings``) and printed as a note.

    ``model_spec`` may be an ``nn.Module`` (exported with its own weights; later stages rebuild the
    reference only when it is passed to them again). ``model_options`` go to the model's builder
    (``num_classes=10``), are recorded in the manifest and reused when the reference is rebuilt.
    """
    import numpy as np
    import onnx
    import torch

    from edge_se.models.loading import check_model_options, from_module, resolve_model

    check_out_path(out)  # before anything is loaded: an unusable --out fails in a second, on one line
    plan = plan_formats(formats)
    if dynamic_batch and not SECOND_BATCH <= int(max_batch) <= 4096:
        raise InputError(f"--max-batch {max_batch} is outside {SECOND_BATCH}..4096 (validation runs batch "
                         f"{SECOND_BATCH}); pass --static-batch for a fixed batch")
    if images is not None:
        list_images(images)  # fail early and clearly on an empty or missing folder
    if labels is not None and not Path(labels).is_file():
        raise InputError(f"labels file {labels} does not exist")
    timings: dict[str, float] = {}

    def timed(key: str, title: str):
        class _T:
            def __enter__(self_inner):
                self_inner.t0 = time.perf_counter()
                self_inner.cm = progress.stage(title)
                return self_inner.cm.__enter__()

            def __exit__(self_inner, *exc):
                timings[key] = round(time.perf_counter() - self_inner.t0, 3)
                return self_inner.cm.__exit__(*exc)

        return _T()

    options = check_model_options(model_options)
    if not isinstance(model_spec, str):
        if options:
            raise InputError("model options apply to a model spec; an nn.Module is already built")
        loaded = from_module(model_spec, checkpoint)
        model_spec = loaded.spec
    else:
        with timed("load", f"Loading {model_spec}"):
            loaded = resolve_model(model_spec, checkpoint=checkpoint, seed=SEED, **options)
    if input_shape is None:
        if loaded.default_input_shape is None:
            raise InputError(f"{model_spec} has no default input shape; pass --input-shape NxCxHxW")
        input_shape = tuple(loaded.default_input_shape)
    shape = tuple(int(v) for v in input_shape)
    check_shape_size(shape)
    module = loaded.module.eval()
    progress.info(f"weights: {loaded.weights}")
    spec = preprocessing or PreprocessSpec.for_input_shape(shape)
    if spec.channels != shape[1] or tuple(spec.crop) != tuple(shape[2:]):
        raise InputError(
            f"preprocessing gives {spec.channels}x{spec.crop[0]}x{spec.crop[1]} inputs but --input-shape is "
            f"{'x'.join(map(str, shape))}; make them agree"
        )

    with staged_bundle_dir(out, force=force) as stage:
        with timed("probe", "Checking the model runs at the input shape"):
            probe = probe_model(module, shape)
        if probe["resolution"] == "fixed":
            progress.info(f"[yellow]note[/yellow]: the model works at this resolution only ({probe['fixed_by']})")
        example = torch.zeros(shape)
        check_x = torch.randn((2, *shape[1:]), generator=torch.Generator().manual_seed(SEED))
        tracer_warnings: list[dict] = []
        ts_check = None
        if "ts" in plan:
            with timed("trace", "Tracing TorchScript"):
                ts_check = export_torchscript(module, example, stage / "model.ts", check_inputs=[check_x] if dynamic_batch else None,
                                              tracer_warnings=tracer_warnings)
        if tracer_warnings and not allow_tracer_warnings:
            raise tracer_warning_error(tracer_warnings, "TorchScript tracing")
        out_names = output_names_for(probe["outputs"])
        raw = stage / ".raw.onnx"
        n_traced = len(tracer_warnings)
        with timed("export", f"Exporting ONNX (opset {opset}, {exporter} exporter)"):
            try:
                info = export_onnx_with_fallback(module, example, raw, opset=opset, dynamic_batch=dynamic_batch,
                                                 exporter=exporter, output_names=out_names,
                                                 tracer_warnings=tracer_warnings)
            except ExportError as e:
                path = failure_log_path(out)
                atomic_write_text(path, getattr(e, "log", "") or str(e))
                raise ExportError(f"{e} (full log: {path})") from None
            raw_model, converted = downconvert_opset(onnx.load(str(raw)), opset)
            if converted:
                progress.info(f"[yellow]note[/yellow]: {escape(converted)}")
        if info.get("log"):
            atomic_write_text(stage / EXPORT_LOG, info["log"])
        if len(tracer_warnings) > n_traced and not allow_tracer_warnings:
            raise tracer_warning_error(tracer_warnings[n_traced:], "ONNX export")
        if tracer_warnings:
            _note_tracer_warnings(tracer_warnings)
        feeds = {raw_model.graph.input[0].name: np.random.default_rng(SEED).standard_normal((2 if dynamic_batch else shape[0], *shape[1:])).astype(np.float32)}
        with timed("simplify", f"Simplifying with {simplifier}"):
            model, simp = simplify_model(raw_model, feeds, simplifier)
            extra_files = save_model(model, stage / "model.onnx")
        for p in stage.glob(".raw.onnx*"):
            p.unlink()
        if not simp.get("used"):
            progress.info(f"[yellow]note[/yellow]: kept the unsimplified graph ({simp.get('reason')})")
        with timed("check", "Checking the ONNX graph"):
            onnx_check = check_onnx_file(stage / "model.onnx")
            inputs_spec, outputs_spec = io_specs(model)
            ops = op_support(count_ops(model), trt_version)
        opset_used = onnx_opset(model)

        bundle = Bundle.new(
            stage,
            model={
                "spec": model_spec,
                "source": loaded.source,
                "options": options,
                "checkpoint": None if checkpoint is None else {"path": str(Path(checkpoint).resolve()), "sha256": loaded.checkpoint_sha256},
                "weights": loaded.weights,
                "seed": SEED,
                "user_file": None if loaded.user_file is None else {"path": str(Path(loaded.user_file).resolve()), "sha256": loaded.user_file_sha256},
                "input_shape": list(shape),
                "dynamic_batch": dynamic_batch,
                "resolution": probe["resolution"],
                "fixed_by": probe["fixed_by"],
                "attention_type": loaded.attention_type,
                "state_sha256": state_fingerprint(module),
                "tracer_warnings": tracer_warnings,
            },
            preprocessing=spec.to_dict(),
            tools=tool_versions(),
            timings=timings,
        )
        if labels is not None:
            with atomic_path(stage / "labels.txt") as tmp:
                tmp.write_bytes(Path(labels).read_bytes())
            bundle.manifest["labels"] = bundle.file_entry("labels.txt")
        io = {"inputs": [{"name": "input", "shape": [("batch" if dynamic_batch else shape[0]), *shape[1:]], "dtype": "float32"}],
              "outputs": outputs_spec}
        if ts_check is not None:
            bundle.add_artifact("model.ts", stage="export", format=TORCHSCRIPT, precision="fp32", backend="torchscript",
                                policy=None, exporter="torch.jit.trace+freeze", **io)
        bundle.add_artifact("model.onnx", stage="export", format=ONNX, precision="fp32", backend="onnxruntime",
                            extra_files=extra_files, policy=None, opset=opset_used, exporter=info["exporter"],
                            exporter_fallback=info.get("fallback"), opset_conversion=converted,
                            exporter_log=bundle.file_entry(EXPORT_LOG) if info.get("log") else None,
                            simplifier=simp, inputs=inputs_spec, outputs=outputs_spec,
                            tensorrt_ops={"trt_version": ops["trt_version"], "table": ops["table"], "note": ops["note"],
                                          "unsupported": ops["unsupported"], "unknown": ops["unknown"]})
        if ts_check is not None:
            bundle.record_check({**ts_check, "artifact": "model.ts"})
        bundle.record_check({**onnx_check, "artifact": "model.onnx"})
        torch_export_artifacts(bundle, module, plan, shape, dynamic_batch, max_batch, io, timed, out)

        with timed("validate", "Validating every artifact against PyTorch"):
            validate_fp32(bundle, module, images=images)
        bundle.save()
        failed = [c for c in bundle.manifest["checks"] if not c["passed"]]
        if failed:
            raise CheckFailed(f"validation failed, nothing was published: {failed_summary(failed)}")
    published = Bundle.open(out)
    return published


def _note_tracer_warnings(found: list[dict]) -> None:
    """One note line: the export went ahead despite tracer warnings."""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    progress.info(f"[yellow]note[/yellow]: exported despite {len(found)} tracer warning(s) (--allow-tracer-warnings; "
                  f"recorded in the manifest): {escape(describe(found[0]))}{more}")


def validate_fp32(bundle: Bundle, module, images: str | Path | None = None) -> list[dict[str, Any]]:
    """Numerics of model.onnx (ORT), model.ts (TorchScript) and the rest against eager PyTorch.

    The torch.export artifacts (``model.pt2``, ``model.aoti.pt2``, ``model.pte``) are checked too,
    each through the runtime backend that runs it. Besides real images and noise, a ``scaled`` set (noise x0.1, x10, negated) exercises a branch
    on the input's sign or scale that the trace may have frozen.
    """
    model = bundle.model()
    checks, ref, inputs, desc = fp32_onnx_numerics(bundle, torch_runner(module), images, seed=model.seed)
    names = [t.name for t in bundle.record("model.onnx").outputs or ()]
    if "model.ts" in bundle.artifacts:
        ts = load_torchscript(bundle.verify("model.ts"))
        checks += check_numerics("model.ts", torch_runner(ts), ref, inputs, desc, "fp32", model.dynamic_batch, names,
                                 backend="torchscript", static_batch=model.input_shape[0])
    checks += validate_torch_formats(bundle, ref, inputs, desc)
    for c in checks:
        bundle.record_check(c)
    return checks


__all__ = ["ImagesError", "export_bundle", "tool_versions", "validate_fp32"]
