"""The TensorRT stage: bundle + recipe -> ``<name>.engine`` + sidecar + ``build_<name>.sh``.

``build_bundle_engine`` picks the path from the installed TensorRT (see :mod:`.plan`), builds,
and records the engine in the bundle. ``write_trtexec_script`` does the script alone for a given
TensorRT version, without TensorRT installed (for devices that build with trtexec).
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edge_se import __version__
from edge_se.bundle import Bundle, atomic_write_bytes, owned_mkdtemp, sha256_file
from edge_se.errors import BundleError, CalibrationError, EdgeSEError, InputError
from edge_se.manifest import TENSORRT_CALIBRATION_CACHE, TENSORRT_ENGINE, TRT_QDQ_ARTIFACT
from edge_se.tensorrt import sidecar as sc
from edge_se.tensorrt.plan import BuildPlan, plan_build
from edge_se.tensorrt.recipe import Recipe
from edge_se.tensorrt.trtexec import render_script, trtexec_command, write_script
from edge_se.tensorrt.versions import Version
from edge_se.trust import confined_path, inside_root, safe_name, safe_sha256



def input_name(bundle: Bundle, recipe: Recipe) -> str:
    """The model's image input name: the recipe's, else the bundle's ``model.onnx`` record's."""
    if recipe.input_name:
        return recipe.input_name
    name = bundle.record("model.onnx").input_name if "model.onnx" in bundle.artifacts else None
    return name or "input"


def onnx_for(bundle: Bundle, plan: BuildPlan, recipe: Recipe) -> Path:
    """The verified ONNX artifact the plan builds from, or a message saying which stage makes it."""
    if plan.onnx_artifact not in bundle.artifacts:
        what = {"model.int8.trt.onnx": "the INT8 QDQ model (TensorRT-ready)", "model.fp16.onnx": "the FP16 model"}
        raise BundleError(
            f"bundle {bundle.root} has no {plan.onnx_artifact} ({what.get(plan.onnx_artifact, 'the FP32 model')}), "
            f"which the {plan.path} path on TensorRT {plan.tensorrt_version} needs; create it with "
            f"'edge-se export --recipe {recipe.path or recipe.name}'"
        )
    return bundle.verify(plan.onnx_artifact)


def check_shapes(bundle: Bundle, plan: BuildPlan, recipe: Recipe) -> None:
    """Refuse a recipe whose shapes the bundle's ONNX input cannot take (static dims differ)."""
    inputs = bundle.record(plan.onnx_artifact).inputs if plan.onnx_artifact in bundle.artifacts else None
    if not inputs:
        return
    shape = list(inputs[0].shape)
    p = plan.profiles[0]
    for d, dim in enumerate(shape):
        wanted = {p.min[d], p.opt[d], p.max[d]} if d < len(p.min) else set()
        if isinstance(dim, int) and wanted != {dim}:
            axis = "batch" if d == 0 else f"dim {d}"
            raise BundleError(
                f"{recipe.path or recipe.name} asks for {axis} {sorted(wanted)} but {plan.onnx_artifact} in "
                f"{bundle.root} has a fixed {axis} of {dim} (input shape {shape}); re-export with "
                f"'edge-se export --recipe {recipe.path or recipe.name}' or change model.input_shape/batch"
            )


def float_nodes(bundle: Bundle, plan: BuildPlan, onnx_path: Path) -> tuple[list[str], str]:
    """ONNX node names the precision policy keeps in float, and where the list came from.

    A build from the Q/DQ file takes its precisions from the graph, so the file must have been
    quantized under the recipe's policy (``auto``: whatever the INT8 stage decided)."""
    if plan.onnx_artifact == TRT_QDQ_ARTIFACT and plan.policy != "auto":
        made = bundle.record(TRT_QDQ_ARTIFACT).policy if TRT_QDQ_ARTIFACT in bundle.artifacts else None
        if made is not None and made != plan.policy:
            raise CalibrationError(
                f"the recipe's precision.policy is {plan.policy!r} but {TRT_QDQ_ARTIFACT} in {bundle.root} was "
                f"quantized with policy {made!r}, and a {plan.path} build takes its precisions from that file; run "
                f"'edge-se quantize {bundle.root} --precision int8 --policy {plan.policy}' or set the recipe's "
                f"policy to {made!r} (or 'auto')"
            )
    if plan.policy_mode != "layer-constraints":
        return [], "none"
    if plan.policy == "auto":  # the decision the quantize stage recorded for the TensorRT-ready file
        decision = bundle.record(TRT_QDQ_ARTIFACT).decision if TRT_QDQ_ARTIFACT in bundle.artifacts else None
        if decision is None:
            raise CalibrationError(
                f"recipe policy 'auto' needs the decision of the INT8 stage, but {bundle.root} has no "
                f"{TRT_QDQ_ARTIFACT} with one; run 'edge-se quantize {bundle.root} --precision int8 --policy auto' first"
            )
        return list(decision.kept_nodes), f"bundle:{TRT_QDQ_ARTIFACT}"
    from edge_se.quantize.patterns import find_attention_gates, gate_node_names

    return gate_node_names(find_attention_gates(onnx_path)), "attention-gate patterns"


def artifact_file(bundle: Bundle, name: str) -> Path:
    """The main file of artifact ``name`` as its manifest record names it, confined to the bundle.

    The manifest is data: its path must be relative, inside the bundle, and made of plain names
    (it is pasted into build scripts).
    """
    rel = bundle.record(name).path if name in bundle.artifacts else name
    path = confined_path(bundle.root, rel, f"artifact {name} path")
    for part in str(rel).split("/"):
        safe_name(part, f"artifact {name} path part", str(bundle.root / "manifest.json"))
    return path


def artifact_sha256(bundle: Bundle, name: str, path: Path) -> str:
    """The manifest's sha256 of ``path`` (artifact ``name``), checked to be 64 hex digits."""
    entries = bundle.record(name).files if name in bundle.artifacts else ()
    rel = path.relative_to(bundle.root).as_posix()
    entry = next((f for f in entries if f.path == rel), entries[0] if entries else None)
    digest = entry.sha256 if entry is not None else sha256_file(path)
    return safe_sha256(digest, f"sha256 of {name}", str(bundle.root / "manifest.json"))


def _find(bundle: Bundle, fmt: str) -> Path | None:
    names = bundle.find(format=fmt)
    return bundle.verify(names[0]) if names else None


def split_calib(path: Path, option: str = "--calib") -> tuple[Path | None, Path | None]:
    """``(cache, set)`` for the build stage's one calibration input: a calibration set folder ->
    ``(None, path)``; a file whose first line is a TensorRT cache header (``TRT-<version>-<algorithm>``)
    -> ``(path, None)``; anything else is a one-line :class:`InputError` naming ``option``."""
    from edge_se.calibration.dataset import load_calibration_set
    from edge_se.tensorrt.calibrator import cache_header

    path = Path(path)
    if path.is_dir():
        try:
            load_calibration_set(path, verify=False)
        except EdgeSEError as e:
            raise InputError(f"{option} {path}: {e} (build takes a calibration set folder or a TensorRT "
                             "calibration cache)") from None
        return None, path
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(512)
        if cache_header(head) is None:
            raise InputError(f"{option} {path} is neither a TensorRT calibration cache (its first line is not "
                             "'TRT-<version>-<algorithm>') nor a calibration set folder")
        return path, None
    raise InputError(f"{option} {path} does not exist; pass a calibration set folder ('edge-se calibrate') or a "
                     "TensorRT calibration cache file")


def calibration_inputs(
    bundle: Bundle, plan: BuildPlan, cache: Path | None, calib_set: Path | None
) -> tuple[bytes | None, Iterator[np.ndarray] | None, str | None]:
    """(cache bytes, batches, calibration identity sha256) for the calibrator path."""
    from edge_se.tensorrt.calibrator import check_cache

    cache = cache or _find(bundle, TENSORRT_CALIBRATION_CACHE)
    data = None
    if cache is not None:
        if not Path(cache).is_file():
            raise CalibrationError(f"calibration cache {cache} does not exist")
        data = Path(cache).read_bytes()
        check_cache(data, plan.calibrator or "entropy2", str(cache), version=plan.tensorrt_version)
    batches, identity = None, (sha256_file(cache) if cache else None)
    if calib_set is not None:
        from edge_se.calibration.dataset import load_calibration_set

        cset = load_calibration_set(calib_set)
        shape = tuple(plan.calibration_shape or ())
        if tuple(cset.sample_shape) != shape[1:]:
            raise CalibrationError(
                f"calibration set {calib_set} has samples of shape {list(cset.sample_shape)}, the calibration "
                f"profile needs {list(shape[1:])}; rebuild the set at the recipe's opt resolution"
            )
        batches = (np.asarray(b, dtype=np.float32) for b in cset.batches(shape[0]))
        identity = cset.sha256
    if data is None and batches is None:
        raise CalibrationError(
            f"INT8 calibrator path on TensorRT {plan.tensorrt_version} needs a calibration cache or set; the bundle "
            "has neither: run 'edge-se quantize --precision int8', or pass --calib (a calibration set folder or cache file)"
        )
    return data, batches, identity


def rebuild_command(bundle: Bundle, recipe: Recipe) -> str:
    return f"edge-se build {shlex.quote(str(bundle.root))} --recipe {shlex.quote(str(recipe.path or recipe.name))}"


def write_trtexec_script(
    bundle: Bundle, recipe: Recipe, plan: BuildPlan, folder: Path, engine_name: str, float_layers: Sequence[str] = ()
) -> Path:
    """``build_<name>.sh`` in ``folder`` with the trtexec command equivalent to ``plan``.

    Names, paths and digests from the recipe and the manifest are checked here too (the manifest
    is data, never trusted): the script and everything it writes stay inside ``folder``.
    """
    where = str(recipe.path or "recipe")
    safe_name(engine_name, "engine name", where)
    onnx_path = artifact_file(bundle, plan.onnx_artifact)
    onnx_rel = os.path.relpath(onnx_path, folder)
    cache_rel = None
    if plan.calibrator:
        # The cache this build wrote, else the INT8 stage's cache in the bundle; trtexec gets the
        # same scales under the header its own (Entropy2) calibrator reads for this version.
        from edge_se.tensorrt.calibrator import for_trtexec

        cache = folder / calib_cache_name(engine_name)
        staged = bundle.find(format=TENSORRT_CALIBRATION_CACHE)
        if not cache.is_file() and staged:
            cache = bundle.verify(staged[0])
        if cache.is_file():
            copy = folder / trtexec_cache_name(engine_name)
            atomic_write_bytes(copy, for_trtexec(cache.read_bytes(), plan.tensorrt_version, str(cache)))
            cache_rel = os.path.relpath(copy, folder)
    # The script runs on the device, maybe from a copy of the bundle: its timing cache lives beside it.
    # (Quoted in the script like every value; here it must be one file name, not '..'.)
    timing = Path(plan.timing_cache).name if plan.timing_cache else None
    if timing is not None and (timing in ("", ".", "..") or not timing.isprintable()):
        raise BundleError(f"{where}: timing cache {plan.timing_cache!r} does not end in a file name")
    cmd = trtexec_command(plan, onnx=onnx_rel, engine=engine_name, calibration_cache=cache_rel,
                          float_layers=float_layers, timing_cache=timing)
    digest = artifact_sha256(bundle, plan.onnx_artifact, onnx_path)
    stem = engine_stem(engine_name)
    text = render_script(cmd, plan, target=recipe.target.name, recipe=str(recipe.path or recipe.name),
                         onnx_sha256=digest, name=stem)
    return write_script(folder, text, stem)


def engine_stem(engine_name: str) -> str:
    """``desktop-int8.engine`` -> ``desktop-int8`` (the script's and the cache's base name)."""
    return engine_name[: -len(".engine")] if engine_name.endswith(".engine") else engine_name


def calib_cache_name(engine_name: str) -> str:
    return engine_stem(engine_name) + ".calibration.cache"


def trtexec_cache_name(engine_name: str) -> str:
    """The cache the trtexec script reads (the build's scales under trtexec's Entropy2 header)."""
    return engine_stem(engine_name) + ".trtexec.calibration.cache"


def script_only(bundle_root: str | Path, recipe: Recipe, version: Version) -> Path:
    """Write the trtexec script for TensorRT ``version`` without importing TensorRT."""
    bundle = Bundle.open(bundle_root)
    plan = plan_build(recipe, version, "tensorrt", input_name(bundle, recipe))
    if plan.onnx_artifact not in bundle.artifacts:
        onnx_for(bundle, plan, recipe)  # raises the "which stage makes it" message
    check_shapes(bundle, plan, recipe)
    nodes, _ = float_nodes(bundle, plan, artifact_file(bundle, plan.onnx_artifact))
    return write_trtexec_script(bundle, recipe, plan, bundle.root, recipe.engine_name(), nodes)


def build_bundle_engine(
    bundle_root: str | Path,
    recipe: Recipe,
    *,
    out: Path | None = None,
    flavor: str | None = None,
    calibration_cache: Path | None = None,
    calibration_set: Path | None = None,
    compute_capabilities: Sequence[str] = (),
    timing_cache: Path | None = None,
) -> dict[str, Any]:
    """Build the recipe's engine from the bundle; return its artifact record.

    ``out``: a folder to write the engine, sidecar and script to instead of the bundle (then the
    bundle manifest is not changed). ``compute_capabilities``: TensorRT-RTX targets when building
    on a machine without a GPU.
    """
    bundle = Bundle.open(bundle_root)
    if out:
        return _build(bundle, recipe, Path(out), None, flavor, calibration_cache, calibration_set,
                      compute_capabilities, timing_cache)
    with bundle.writing():  # the bundle's lock; engine, sidecar, script and manifest publish as one step
        staging = owned_mkdtemp(".build-", bundle.root)
        try:
            return _build(bundle, recipe, staging, staging, flavor, calibration_cache, calibration_set,
                          compute_capabilities, timing_cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _build(bundle: Bundle, recipe: Recipe, folder: Path, staging: Path | None, flavor, calibration_cache,
           calibration_set, compute_capabilities, timing_cache) -> dict[str, Any]:
    """Build into ``folder`` (the user's ``--out``, or ``staging`` inside the bundle, then published)."""
    from edge_se.tensorrt._import import import_tensorrt
    from edge_se.runtime.backends.cuda_device import device_info, require_device
    from edge_se.tensorrt.engine import build_serialized

    trt = import_tensorrt(flavor)
    # Full TensorRT: check for a CUDA device before any Builder exists. TensorRT for RTX builds
    # without one (for --compute-capability targets, or its default).
    device = require_device("building a TensorRT engine") if trt.flavor == "tensorrt" else device_info()
    plan = plan_build(recipe, trt.version, trt.flavor, input_name(bundle, recipe))
    if timing_cache is not None:
        plan.timing_cache = str(timing_cache)
    onnx_path = onnx_for(bundle, plan, recipe)
    check_shapes(bundle, plan, recipe)
    nodes, nodes_from = float_nodes(bundle, plan, onnx_path)
    # ``out`` is the user's own choice on the command line; the names in it come from the recipe
    # and stay inside it (inside the bundle's staging folder without ``out``).
    engine_name = safe_name(recipe.engine_name(), "engine name", str(recipe.path or "recipe"))
    engine_path = inside_root(folder, folder / engine_name, "engine")
    folder.mkdir(parents=True, exist_ok=True)
    cache_in = batches = calib_id = None
    cache_out = None
    if plan.calibrator:
        cache_in, batches, calib_id = calibration_inputs(bundle, plan, calibration_cache, calibration_set)
        cache_out = inside_root(folder, folder / calib_cache_name(engine_name), "calibration cache")

    from edge_se.progress import stage

    with stage(f"building {engine_name} ({plan.path}, TensorRT {trt.version_text})"):
        data, report = build_serialized(
            trt.module, plan, onnx_path, float_layers=nodes, calibration_batches=batches,
            calibration_cache_in=cache_in, calibration_cache_out=cache_out,
            compute_capabilities=compute_capabilities,
        )
    atomic_write_bytes(inside_root(folder, engine_path, "engine"), data)
    if cache_out is not None and not cache_out.exists() and cache_in is not None:
        atomic_write_bytes(cache_out, cache_in)  # the trtexec script reads the same cache
    # TensorRT for RTX ships its own CLI (tensorrt_rtx), not trtexec: no script for it.
    script = write_trtexec_script(bundle, recipe, plan, folder, engine_name, nodes) if trt.flavor == "tensorrt" else None
    cc = device.compute_capability if device else ",".join(compute_capabilities) or None
    side = sc.write_sidecar(engine_path, root=folder, record={
        "tensorrt_version": trt.version_text, "tensorrt_flavor": trt.flavor,
        "cuda_version": device.cuda_version if device else None,
        "driver_version": device.driver_version if device else None,
        "gpu_name": device.name if device else None, "compute_capability": cc,
        "dla_core": plan.dla_core, "target": recipe.target.name, "precision": recipe.precision,
        "precision_path": plan.path, "policy": plan.policy, "policy_hash": sc.policy_hash(plan.policy, nodes),
        "calibration_sha256": calib_id,
        "preprocessing_sha256": sc.preprocessing_hash(bundle.manifest.get("preprocessing")),
        "onnx_artifact": plan.onnx_artifact, "onnx_sha256": sha256_file(onnx_path),
        "engine_sha256": sha256_file(engine_path), "recipe": str(recipe.path or recipe.name),
        "recipe_sha256": recipe.sha256, "rebuild_command": rebuild_command(bundle, recipe),
        "built_by": f"edge-se {__version__}",
    })
    meta = {
        "trtexec_script": script.name if script else None,
        "plan": plan.to_dict(), "build": asdict(report), "float_nodes_from": nodes_from,
        "tensorrt": trt.version_text, "tensorrt_flavor": trt.flavor, "recipe": str(recipe.path or recipe.name),
        "target": recipe.target.name, "policy": plan.policy,
    }
    if staging is None:
        return {"path": str(engine_path), "sidecar": str(side), "script": str(script) if script else None, **meta}
    extra = [side.name] + ([script.name] if script else [])
    extra += [cache_out.name] if cache_out is not None and cache_out.exists() else []
    with bundle.publishing(staging, [engine_name, *extra]):
        record = bundle.add_artifact(engine_name, stage="tensorrt", format=TENSORRT_ENGINE,
                                     precision=recipe.precision, backend="tensorrt", extra_files=extra, **meta)
        bundle.manifest.setdefault("tools", {})[trt.flavor] = trt.version_text
    return record

