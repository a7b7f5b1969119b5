"""Build a serialized TensorRT engine from an ONNX file by following a :class:`BuildPlan`.

The plan decides; NVIDIA's Polygraphy (``polygraphy.backend.trt``, tested on every TensorRT
version) makes the builder calls: ``NetworkFromOnnxPath`` (EXPLICIT_BATCH where the version needs
it, STRONGLY_TYPED when the plan says), ``SetLayerPrecisions``, ``CreateConfig`` /
``CreateConfigRTX`` (profile, workspace, optimization level, timing cache, precision flags and
constraints, calibrator) and ``EngineBytesFromNetwork``. What they cannot express goes through
Polygraphy's documented hooks ``PostprocessNetwork`` (kept-float layers' output types) and
``PostprocessConfig`` (DLA core, TensorRT 8.x's static calibration profile). The TensorRT
attributes this module touches itself are listed in ``TRT_API`` by the path that runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edge_se.errors import ExportError, InputError
from edge_se.tensorrt.plan import BuildPlan

#: TensorRT API called here directly (Polygraphy's own calls are its business), by the path that
#: runs it: ``api_paths(plan)`` names a build's paths and ``build_serialized`` dispatches on them
#: (``if "dla" in paths:``). "common" runs on every build; "layer-precisions" where the plan applies
#: kept-float layers as constraints (8.5-10.x); "calibrator" (the calibrator module's API, 8.5-10.x);
#: "calibration-profile" for 8.x calibration; "dla" where a recipe asks for DLA. tests/tensorrt/test_api_surface.py finds every TensorRT use in this file
#: (objects named by the convention in docs/tensorrt.md), checks it is declared under the path it
#: sits on, and that each path's API exists in every TensorRT version whose plans take that path.
TRT_API: dict[str, dict[str, tuple[str, ...]]] = {
    "common": {
        "INetworkDefinition": ("num_inputs", "get_input", "num_layers", "get_layer"),
        "ITensor": ("name", "shape"),
        "ILayer": ("name",),
        "MemoryPoolType": ("WORKSPACE",),
    },
    "layer-precisions": {
        "ILayer": ("num_outputs", "set_output_type"),
        "DataType": ("FLOAT",),
    },
    "calibration-profile": {
        "Builder": ("create_optimization_profile",),
        "IOptimizationProfile": ("set_shape",),
        "IBuilderConfig": ("set_calibration_profile",),
    },
    "dla": {
        "Builder": ("num_DLA_cores",),
        "IBuilderConfig": ("default_device_type", "DLA_core", "can_run_on_DLA", "set_flag"),
        "DeviceType": ("DLA",),
        "BuilderFlag": ("GPU_FALLBACK",),
    },
}


def api_paths(plan: BuildPlan) -> set[str]:
    """The ``TRT_API`` paths a build of ``plan`` takes (``build_serialized`` dispatches on these)."""
    paths = {"common"}
    if plan.policy_mode == "layer-constraints":
        paths.add("layer-precisions")
    if plan.calibrator:
        paths.add("calibrator")  # edge_se.tensorrt.calibrator (its TRT_PATH)
        if plan.calibration_profile is not None:
            paths.add("calibration-profile")
    if plan.dla_core is not None:
        paths.add("dla")
    return paths


#: plan builder flags -> CreateConfig arguments (GPU_FALLBACK goes with the DLA settings)
_FLAGS = {"FP16": ("fp16", True), "INT8": ("int8", True), "OBEY_PRECISION_CONSTRAINTS": ("precision_constraints", "obey")}


@dataclass
class BuildReport:
    """What happened during a build (recorded in the bundle)."""

    layers: int = 0
    float_layers_requested: int = 0
    float_layers_applied: int = 0
    dla_layers: int | None = None
    gpu_fallback_layers: int | None = None
    calibration_batches: int | None = None
    calibration_cache: str | None = None
    timing_cache: str | None = None
    compute_capabilities: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def profile_shapes(network: Any, plan: BuildPlan) -> dict[str, tuple[tuple[int, ...], ...]]:
    """``{input: (min, opt, max)}`` for the network's dynamic inputs; a recipe range that a static
    input or a fixed dimension cannot take is a one-line :class:`InputError`."""
    wanted = {p.input: p for p in plan.profiles}
    out = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        p = wanted.get(tensor.name) if len(wanted) > 1 else next(iter(wanted.values()))
        if p is None:
            continue
        if not any(s < 0 for s in shape):
            if p.min != p.max:
                raise InputError(
                    f"the recipe asks for shapes {list(p.min)} to {list(p.max)} but the ONNX input "
                    f"{tensor.name!r} is static {list(shape)}; re-export with dynamic axes or make the range static"
                )
            continue
        for d in range(len(shape)):
            if shape[d] >= 0 and not (p.min[d] == p.opt[d] == p.max[d] == shape[d]):
                raise InputError(
                    f"ONNX input {tensor.name!r} has fixed dim {d} = {shape[d]}, but the recipe asks for "
                    f"{p.min[d]}/{p.opt[d]}/{p.max[d]}; re-export the model with that axis dynamic"
                )
        out[tensor.name] = (tuple(p.min), tuple(p.opt), tuple(p.max))
    return out


def _float_outputs(trt: Any, network: Any, names: Sequence[str], report: BuildReport) -> None:
    """Kept-float layers' output types (SetLayerPrecisions sets only their compute precision),
    as trtexec's --layerOutputTypes does in the script."""
    wanted = set(names)
    report.float_layers_requested = len(wanted)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in wanted:
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.DataType.FLOAT)
            report.float_layers_applied += 1
    if wanted and not report.float_layers_applied:
        report.warnings.append(
            f"precision policy: none of the {len(wanted)} ONNX nodes to keep in float matched a TensorRT layer name"
        )


def _apply_dla(trt: Any, builder: Any, network: Any, config: Any, plan: BuildPlan, report: BuildReport) -> None:
    # Not CreateConfig(use_dla=True): it always takes DLA core 0 and adds PREFER_PRECISION_CONSTRAINTS
    # and DIRECT_IO, which the plan (and the trtexec script's --useDLACore) does not ask for.
    if builder.num_DLA_cores <= plan.dla_core:
        raise InputError(
            f"the recipe asks for DLA core {plan.dla_core} but this device has {builder.num_DLA_cores} DLA "
            "cores; drop target.dla_core or build on a device with DLA"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = plan.dla_core
    if "GPU_FALLBACK" in plan.builder_flags:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    on_dla = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers))
    report.dla_layers = on_dla
    report.gpu_fallback_layers = network.num_layers - on_dla
    if report.gpu_fallback_layers and not plan.gpu_fallback:
        raise InputError(
            f"{report.gpu_fallback_layers} of {network.num_layers} layers cannot run on DLA and "
            "target.gpu_fallback is false; set it to true or drop target.dla_core"
        )


def _calibration_profile(builder: Any, network: Any, config: Any, plan: BuildPlan) -> None:
    # TensorRT 8.x: a static calibration profile (CreateConfig would take the build profile).
    # Polygraphy's EngineBytesFromNetwork then reads it back to shape the calibrator's batches.
    shape = tuple(plan.calibration_profile)
    cal = builder.create_optimization_profile()
    cal.set_shape(network.get_input(0).name, shape, shape, shape)
    config.set_calibration_profile(cal)


def _create_config(p: Any, trt: Any, rtx: bool, plan: BuildPlan, network: Any, calibrator: Any,
                   compute_capabilities: Sequence[str], timing_cache: Path | None) -> Any:
    """Polygraphy's config loader for ``plan`` (not yet called)."""
    unknown = set(plan.builder_flags) - set(_FLAGS) - {"GPU_FALLBACK"}
    if unknown:
        raise ExportError(f"build plan flags {sorted(unknown)} have no Polygraphy CreateConfig argument here")
    shapes = p.Profile()  # Polygraphy's; CreateConfig makes the IOptimizationProfile from it
    for name, (lo, opt, hi) in profile_shapes(network, plan).items():
        shapes.add(name, lo, opt, hi)
    common = {
        "profiles": [shapes],
        "builder_optimization_level": plan.optimization_level,
        "memory_pool_limits": {trt.MemoryPoolType.WORKSPACE: plan.workspace_mib << 20} if plan.workspace_mib else None,
        "load_timing_cache": str(timing_cache) if timing_cache else None,
    }
    if rtx:
        from polygraphy.backend.tensorrt_rtx import CreateConfigRTX

        ccs = [tuple(int(x) for x in cc.split(".")) for cc in compute_capabilities]
        return CreateConfigRTX(compute_capabilities=ccs or None, **common)
    if compute_capabilities:
        raise InputError("--compute-capability is for TensorRT for RTX builds (EDGE_SE_TENSORRT=tensorrt_rtx); "
                         "full TensorRT builds for the GPU it runs on")
    flags = dict(_FLAGS[f] for f in plan.builder_flags if f in _FLAGS)
    # tf32=True: TensorRT's and trtexec's default, which Polygraphy's CreateConfig turns off otherwise.
    return p.CreateConfig(tf32=True, calibrator=calibrator, **flags, **common)


def _failure(plan: BuildPlan, onnx_path: Path, sink: Sequence[str], err: Exception) -> ExportError:
    found = dict.fromkeys(m.split(": ", 1)[1] for m in sink if m.startswith("ERROR"))  # TensorRT and Polygraphy both log it
    errors = " | ".join(found) or (str(err).splitlines() or [type(err).__name__])[0]
    if "parse ONNX" in str(err):
        return ExportError(f"TensorRT {plan.tensorrt_version} could not parse {onnx_path.name}: {errors}")
    return ExportError(f"TensorRT {plan.tensorrt_version} failed to build the engine: {errors}")


def build_serialized(
    trt: Any,
    plan: BuildPlan,
    onnx_path: Path,
    *,
    float_layers: Sequence[str] = (),
    calibration_batches: Iterable[np.ndarray] | None = None,
    calibration_cache_in: bytes | None = None,
    calibration_cache_out: Path | None = None,
    compute_capabilities: Sequence[str] = (),
) -> tuple[bytes, BuildReport]:
    """Build ``onnx_path`` (external ``.onnx.data`` weights included) into plan bytes with the
    bindings module ``trt``. ``compute_capabilities`` (e.g. ``["8.6"]``) is for TensorRT for RTX
    builds on a machine without a GPU."""
    from edge_se.runtime.backends.trt_polygraphy import captured, flavor_of, import_polygraphy

    rtx = flavor_of(trt) == "tensorrt_rtx"
    paths = api_paths(plan)
    p = import_polygraphy(flavor_of(trt))  # first: the missing-extra message if it is not installed
    from polygraphy.exception import PolygraphyException

    report = BuildReport(compute_capabilities=list(compute_capabilities))
    sink: list[str] = []

    def check(network: Any) -> None:
        report.layers = network.num_layers

    # Polygraphy loaders (lazy callables) are load_*; ``network``, ``config``... are TensorRT objects.
    load_network = p.PostprocessNetwork(p.NetworkFromOnnxPath(str(onnx_path), strongly_typed=plan.strongly_typed),
                                        func=check, name="edge-se: count layers")
    if "layer-precisions" in paths:
        load_network = p.SetLayerPrecisions(load_network, {n: trt.DataType.FLOAT for n in float_layers})
        load_network = p.PostprocessNetwork(
            load_network, func=lambda network: _float_outputs(trt, network, float_layers, report),
            name="edge-se: kept-float output types")

    calibrator = None
    if "calibrator" in paths:
        from edge_se.tensorrt.calibrator import make_calibrator

        batch = plan.calibration_shape[0] if plan.calibration_shape else plan.profiles[0].opt[0]
        calibrator = make_calibrator(trt, plan.calibrator, calibration_batches, batch, calibration_cache_in,
                                     calibration_cache_out, input_name=plan.profiles[0].input)
    # Timing cache: loaded if present, saved after the build (TensorRT for RTX has none to keep).
    timing = Path(plan.timing_cache) if plan.timing_cache and not rtx else None

    def postprocess(builder: Any, network: Any, config: Any) -> None:
        if "calibration-profile" in paths:
            _calibration_profile(builder, network, config, plan)
        if "dla" in paths:
            _apply_dla(trt, builder, network, config, plan, report)

    def load_config(builder: Any, network: Any) -> Any:
        create = _create_config(p, trt, rtx, plan, network, calibrator, compute_capabilities, timing)
        return p.PostprocessConfig(create, func=postprocess)(builder, network)

    try:
        with captured(sink):
            serialized = p.EngineBytesFromNetwork(load_network, config=load_config,
                                                  save_timing_cache=str(timing) if timing else None)()
    except PolygraphyException as e:
        if calibrator is not None:
            calibrator.data_loader.raise_error()  # the calibration set's own error first
        raise _failure(plan, onnx_path, sink, e) from None
    finally:
        if calibrator is not None:
            calibrator.free()
    if calibrator is not None:
        report.calibration_batches = calibrator.data_loader.used
        calibrator.data_loader.raise_error()
    if timing is not None:
        report.timing_cache = str(timing)
    if calibration_cache_out is not None and calibration_cache_out.is_file():
        report.calibration_cache = str(calibration_cache_out)
    report.warnings += [m for m in sink if m.startswith("WARNING")][:20]
    return bytes(serialized), report

