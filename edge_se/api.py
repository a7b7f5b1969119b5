"""The Python API: every stage from a notebook or a script, without the command line.

>>> import edge_se
>>> exported = edge_se.export("se_resnet18", (1, 3, 224, 224), "bundles/se18")
>>> q = edge_se.quantize(exported.bundle, "int8", calib="photos/")
>>> with edge_se.Runtime.load(exported.bundle) as rt:
...     rt.classify("cat.jpg")

Each function is a thin layer over the stage the command line runs and returns a typed, frozen
result (never a dict whose shape varies). Errors are :class:`edge_se.errors.EdgeSEError`
subclasses with the same one-line messages the command line prints. Stages report progress
through ``logging.getLogger("edge_se")``; nothing is printed unless the caller configures logging.
See docs/api.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from edge_se.runtime import Runtime



@dataclass(frozen=True)
class Check:
    """One recorded check of a bundle artifact."""

    name: str
    artifact: str | None
    passed: bool
    precision: str | None = None
    backend: str | None = None
    reason: str = ""

    @classmethod
    def from_record(cls, c: Mapping[str, Any]) -> "Check":
        return cls(name=str(c.get("name")), artifact=c.get("artifact"), passed=bool(c.get("passed")),
                   precision=c.get("precision"), backend=c.get("backend"), reason=str(c.get("reason") or ""))


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the bundle folder, its artifacts and the checks they passed."""

    bundle: Path
    artifacts: tuple[str, ...]
    checks: tuple[Check, ...]
    reference: str  # "pytorch", or "onnxruntime" for a bundle made from an ONNX file
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def runtime(self, backend: str = "auto", **options: Any) -> Runtime:
        """The bundle loaded in the embedded runtime (see :meth:`edge_se.Runtime.load`)."""
        return Runtime.load(self.bundle, backend, **options)


@dataclass(frozen=True)
class PrecisionDecision:
    """Which layers a reduced-precision file keeps in float, and how much runs in INT8."""

    artifact: str
    policy: str | None
    int8_mac_share: float | None
    kept_in_float: tuple[str, ...]
    budget_met: bool | None


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize` added to the bundle."""

    bundle: Path
    precision: str
    artifacts: tuple[str, ...]
    checks: tuple[Check, ...]
    decisions: tuple[PrecisionDecision, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` wrote: the trtexec script always, the engine when TensorRT built one."""

    bundle: Path
    recipe: str
    tensorrt_version: str | None
    script: Path | None
    engine: Path | None = None
    sidecar: Path | None = None
    precision_path: str | None = None


@dataclass(frozen=True)
class MatrixRow:
    """One precision x policy x backend row of the validation report."""

    precision: str
    policy: str
    backend: str
    artifact: str | None
    passed: bool | None
    accuracy: float | None
    top1_agreement: float | None
    p50_ms_batch1: float | None
    error: str | None = None


@dataclass(frozen=True)
class ValidateResult:
    """What :func:`validate` measured: the bundle's checks, and the report when one was asked for."""

    bundle: Path
    checks: tuple[Check, ...]
    report: Path | None = None  # report.json
    rows: tuple[MatrixRow, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and all(r.passed is not False for r in self.rows)


def _checks(bundle, artifacts: Sequence[str] | None = None) -> tuple[Check, ...]:
    wanted = None if artifacts is None else set(artifacts)
    return tuple(Check.from_record(c) for c in bundle.manifest.get("checks", [])
                 if wanted is None or c.get("artifact") in wanted)


def _preprocessing(value: Any):
    from edge_se.preprocess import PreprocessSpec

    if value is None or isinstance(value, PreprocessSpec):
        return value
    return PreprocessSpec.from_dict(dict(value), where="preprocessing")


def export(
    model: Any,
    input_shape: Sequence[int] | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    model_options: Mapping[str, Any] | None = None,
    images: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    preprocessing: Any = None,
    formats: str | Sequence[str] | None = None,
    dynamic_batch: bool = True,
    max_batch: int = 8,
    opset: int = 17,
    exporter: str = "torchscript",
    simplifier: str = "onnxslim",
    force: bool = False,
) -> ExportResult:
    """Export ``model`` to a validated bundle at ``out`` (``edge-se export``).

    ``model``: an ``nn.Module`` (exported with its own weights), a model spec (``"se_resnet18"``,
    ``"torchvision:resnet50"``, ``"timm:NAME"``, ``"file.py:factory"``) or the path of an ONNX file.
    ``model_options`` go to the spec's builder (``{"num_classes": 10}``). ``preprocessing``: a
    :class:`~edge_se.preprocess.PreprocessSpec` or a dict of its keys (default: ImageNet's).
    """
    from edge_se.errors import InputError
    from edge_se.export.onnx_import import import_onnx_bundle, is_onnx_path

    if out is None:
        raise InputError("export needs out=, the bundle folder to create")
    spec = _preprocessing(preprocessing)
    if isinstance(model, (str, os.PathLike)) and is_onnx_path(os.fspath(model)):
        if checkpoint is not None or model_options:
            raise InputError(f"checkpoint and model_options need a PyTorch model; {model} is an ONNX file")
        bundle = import_onnx_bundle(model, out, input_shape=input_shape, dynamic_batch=dynamic_batch, images=images,
                                    labels=labels, opset=opset, simplifier=simplifier, preprocessing=spec, force=force)
    else:
        from edge_se.export.pipeline import export_bundle

        bundle = export_bundle(model, input_shape, out, checkpoint=checkpoint, images=images, opset=opset,
                               dynamic_batch=dynamic_batch, force=force, exporter=exporter, simplifier=simplifier,
                               preprocessing=spec, labels=labels, formats=formats, max_batch=max_batch,
                               model_options=dict(model_options or {}))
    return ExportResult(bundle=bundle.root.resolve(), artifacts=tuple(bundle.artifacts), checks=_checks(bundle),
                        reference=bundle.model().reference_backend,
                        notes=tuple(str(n) for n in bundle.manifest["model"].get("import_notes") or ()))


def _reference(model: Any):
    from edge_se.reference.rebuild import ReferenceOptions

    if model is None:
        return None
    if isinstance(model, str):
        return ReferenceOptions(model=model)
    return ReferenceOptions(module=model)


def quantize(
    bundle: str | os.PathLike[str],
    precision: str = "int8",
    *,
    calib: Any = None,
    eval_set: Any = None,
    policy: str | None = None,
    max_drop: float | None = None,
    min_agreement: float | None = None,
    min_int8: float | None = None,
    method: str | None = None,
    trt_version: str = "8.6.1",
    model: Any = None,
    fp16_io: bool = False,
    images: str | os.PathLike[str] | None = None,
    **options: Any,
) -> QuantizeResult:
    """Add FP16 or INT8 files to ``bundle`` (``edge-se quantize``), each checked against the reference.

    ``calib`` (INT8): a folder of images, a ``.npy``/``.npz`` file, a calibration set folder, a TOML
    spec, or a float32 array of preprocessed N x C x H x W tensors. ``model``: the ``nn.Module`` the
    bundle was exported from (or ``"file.py:factory"``), for bundles whose reference cannot be rebuilt
    from the manifest alone. Other ``options`` (``finetune``, ``reduce_range``, ``weight_rounding``,
    ``pte``, ...) are those of :func:`edge_se.quantize.stage.quantize_int8`.
    """
    import numpy as np

    from edge_se.bundle import Bundle, owned_tempdir
    from edge_se.errors import CalibrationError, InputError
    from edge_se.quantize import stage

    b = Bundle.open(bundle)
    reference = _reference(model)
    if precision == "fp16":
        if calib is not None or options:
            raise InputError(f"calib and {', '.join(options) or 'INT8 options'} apply to precision 'int8' only")
        stage._fp32_onnx(b)
        b = stage.quantize_fp16(b, keep_io_types=not fp16_io, images=images, reference=reference)
        added = (stage.FP16_ARTIFACT,)
    elif precision == "int8":
        if calib is None:
            raise CalibrationError("precision 'int8' needs calib= (a folder of images, a .npy/.npz, a calibration set "
                                   "folder, a TOML spec or an array of preprocessed tensors)")
        from edge_se.calibration.build import calibration_from
        from edge_se.tensorrt.versions import calibration_cache_version

        stage._fp32_onnx(b)
        stage._budget(policy or stage.DEFAULT_POLICY, max_drop, min_agreement, min_int8)
        pre = b.preprocessing()
        with owned_tempdir("edge-se-calib-") as tmp:
            sets = []
            for i, src in enumerate((calib, eval_set)):
                if isinstance(src, np.ndarray):
                    np.save(tmp / f"tensors{i}.npy", np.ascontiguousarray(src, dtype=np.float32))
                    src = tmp / f"tensors{i}.npy"
                sets.append(None if src is None else calibration_from(src, tmp, preprocessing=pre))
            b = stage.quantize_int8(b, sets[0], evaluation=sets[1], policy=policy or stage.DEFAULT_POLICY,
                                    method=method or stage.DEFAULT_METHOD, max_drop=max_drop,
                                    min_agreement=min_agreement, min_int8=min_int8,
                                    trt_version=calibration_cache_version(str(trt_version), "trt_version"),
                                    reference=reference, **options)
        added = (stage.TRT_ARTIFACT, stage.CPU_ARTIFACT, stage.CACHE_ARTIFACT)
    else:
        raise InputError(f"precision {precision!r}: expected 'fp16' or 'int8'")
    decisions = []
    for name in added:
        d = b.record(name).decision
        if d is not None:
            decisions.append(PrecisionDecision(artifact=name, policy=d.policy, int8_mac_share=d.int8_mac_share,
                                               kept_in_float=d.kept_blocks, budget_met=d.budget_met))
    return QuantizeResult(bundle=b.root.resolve(), precision=precision, artifacts=added, checks=_checks(b, added),
                          decisions=tuple(decisions))


def build(
    bundle: str | os.PathLike[str],
    recipe: str | os.PathLike[str],
    *,
    script_only: str | None = None,
    calib: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    tensorrt: str | None = None,
    compute_capabilities: Sequence[str] = (),
    timing_cache: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Build the recipe's TensorRT engine from ``bundle`` (``edge-se build``).

    ``script_only="10.3"`` writes only the trtexec script for that TensorRT version (no TensorRT
    needed). ``calib``: a calibration set folder or a TensorRT calibration cache (calibrator path).
    """
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.tensorrt.versions import parse_version_option

    rec = load_recipe(recipe)
    if script_only is not None:
        from edge_se.tensorrt.build import script_only as write_script

        script = write_script(bundle, rec, parse_version_option(str(script_only)))
        return BuildResult(bundle=Path(bundle).resolve(), recipe=rec.name, tensorrt_version=str(script_only),
                           script=Path(script).resolve())
    from edge_se.tensorrt.build import build_bundle_engine, split_calib

    cache, cset = split_calib(Path(calib)) if calib is not None else (None, None)
    record = build_bundle_engine(bundle, rec, out=None if out is None else Path(out), flavor=tensorrt,
                                 calibration_cache=cache, calibration_set=cset,
                                 compute_capabilities=compute_capabilities,
                                 timing_cache=None if timing_cache is None else Path(timing_cache))
    root = Path(out) if out is not None else Path(bundle)
    script = record.get("trtexec_script") or record.get("script")
    return BuildResult(bundle=Path(bundle).resolve(), recipe=rec.name, tensorrt_version=record.get("tensorrt"),
                       script=None if not script else root / Path(script).name, engine=root / record["path"],
                       sidecar=None if not record.get("sidecar") else root / Path(record["sidecar"]).name,
                       precision_path=(record.get("plan") or {}).get("path"))


def validate(
    bundle: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    model: Any = None,
    report: bool = False,
    out: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    digits: bool = False,
    precisions: Sequence[str] | None = None,
    policies: Sequence[str] | None = None,
    backends: Sequence[str] = ("ort",),
    batch_sizes: Sequence[int] = (1, 8),
    limit: int | None = None,
    latency_seconds: float = 2.0,
) -> ValidateResult:
    """Re-check every artifact against the reference (``edge-se validate``); with ``report=True`` (or
    ``out``) also measure the accuracy-vs-latency matrix and write the report there."""
    from edge_se.bundle import Bundle
    from edge_se.validate.artifacts import validate_bundle

    b = Bundle.open(bundle)
    with b.writing():
        checks = validate_bundle(b, images=images, reference=_reference(model))
        b.save()
    result = ValidateResult(bundle=b.root.resolve(), checks=tuple(Check.from_record(c) for c in checks))
    if not (report or out is not None):
        return result
    from edge_se.validate.matrix import POLICIES, PRECISIONS, run_matrix

    rep = run_matrix(b.root, images=images, labels=labels, digits=digits, precisions=precisions or PRECISIONS,
                     policies=policies or POLICIES, backends=backends, out=out, batch_sizes=batch_sizes, limit=limit,
                     latency_seconds=latency_seconds, reference=_reference(model))
    rows = []
    for r in rep["rows"]:
        outs = (r.get("numerics") or {}).get("outputs") or [{}]
        rows.append(MatrixRow(
            precision=r["precision"], policy=r["policy"], backend=r["backend"], artifact=r.get("artifact"),
            passed=None if r.get("skipped") else bool((r.get("numerics") or {}).get("passed")),
            accuracy=r.get("accuracy"), top1_agreement=outs[0].get("top1_agreement_all"),
            p50_ms_batch1=((r.get("latency") or {}).get("1") or {}).get("p50_ms"), error=r.get("error")))
    return ValidateResult(bundle=b.root.resolve(), checks=result.checks, report=Path(rep["files"]["json"]), rows=tuple(rows))


__all__ = ["BuildResult", "Check", "ExportResult", "MatrixRow", "PrecisionDecision", "QuantizeResult", "Runtime",
           "ValidateResult", "build", "export", "quantize", "validate"]
