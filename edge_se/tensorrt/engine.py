"""Build a serialized TensorRT engine from an ONNX file by following a :class:`BuildPlan`.

A thin layer over NVIDIA's documented Python API for each version (Builder, OnnxParser,
IBuilderConfig): the plan decides, this module only calls. Every TensorRT attribute used here is
listed in ``TRT_API`` by era; tests check each exists in that era's real bindings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edge_se.errors import ExportError, InputError
from edge_se.tensorrt.plan import BuildPlan

#: TensorRT API used, per path: "common" everywhere, "classic" on 8.5-10.x only, "v8" on 8.x,
#: "typed-cpu" for TensorRT-RTX builds on a machine without a GPU.
TRT_API: dict[str, dict[str, tuple[str, ...]]] = {
    "common": {
        "Builder": ("create_network", "create_builder_config", "create_optimization_profile",
                    "build_serialized_network", "num_DLA_cores"),
        "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
        "INetworkDefinition": ("num_inputs", "get_input", "num_layers", "get_layer"),
        "ITensor": ("name", "shape"),
        "ILayer": ("name", "num_outputs"),
        "IOptimizationProfile": ("set_shape",),
        "IBuilderConfig": ("set_memory_pool_limit", "set_flag", "add_optimization_profile",
                           "create_timing_cache", "set_timing_cache", "get_timing_cache",
                           "builder_optimization_level", "default_device_type", "DLA_core",
                           "can_run_on_DLA"),
        "ITimingCache": ("serialize",),
        "MemoryPoolType": ("WORKSPACE",),
        "DeviceType": ("DLA", "GPU"),
        "BuilderFlag": ("GPU_FALLBACK",),
        "ILogger": ("log", "Severity"),
    },
    "classic": {
        "BuilderFlag": ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"),
        "IBuilderConfig": ("int8_calibrator",),
        "ILayer": ("precision", "set_output_type"),
        "DataType": ("FLOAT",),
    },
    "v8": {
        "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH",),
        "IBuilderConfig": ("set_calibration_profile",),
    },
    "typed-cpu": {
        "IBuilderConfig": ("num_compute_capabilities", "set_compute_capability"),
        "ComputeCapability": (),
    },
}


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


def _logger(trt: Any, sink: list[str]) -> Any:
    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                sink.append(f"{getattr(severity, 'name', severity)}: {msg}")

    return Logger()


def parse_onnx(trt: Any, builder: Any, plan: BuildPlan, onnx_path: Path, logger: Any) -> tuple[Any, Any]:
    """Network definition and parser for ``onnx_path`` (external ``.onnx.data`` weights included)."""
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file resolves weights stored beside the model (torch's .onnx.data files).
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {plan.tensorrt_version} could not parse {onnx_path.name}: {errors}")
    return network, parser


def _apply_profiles(builder: Any, network: Any, config: Any, plan: BuildPlan) -> None:
    wanted = {p.input: p for p in plan.profiles}
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        p = wanted.get(tensor.name) if len(wanted) > 1 else next(iter(wanted.values()))
        dynamic = [d for d, s in enumerate(shape) if s < 0]
        if not dynamic:
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
        profile.set_shape(tensor.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)


def _apply_float_layers(trt: Any, network: Any, names: Sequence[str], report: BuildReport) -> None:
    wanted = set(names)
    report.float_layers_requested = len(wanted)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in wanted:
            layer.precision = trt.DataType.FLOAT
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.DataType.FLOAT)
            report.float_layers_applied += 1
    if wanted and not report.float_layers_applied:
        report.warnings.append(
            f"precision policy: none of the {len(wanted)} ONNX nodes to keep in float matched a TensorRT layer name"
        )


def _apply_dla(trt: Any, builder: Any, network: Any, config: Any, plan: BuildPlan, report: BuildReport) -> None:
    if builder.num_DLA_cores <= plan.dla_core:
        raise InputError(
            f"the recipe asks for DLA core {plan.dla_core} but this device has {builder.num_DLA_cores} DLA "
            "cores; drop target.dla_core or build on a device with DLA"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = plan.dla_core
    on_dla = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers))
    report.dla_layers = on_dla
    report.gpu_fallback_layers = network.num_layers - on_dla
    if report.gpu_fallback_layers and not plan.gpu_fallback:
        raise InputError(
            f"{report.gpu_fallback_layers} of {network.num_layers} layers cannot run on DLA and "
            "target.gpu_fallback is false; set it to true or drop target.dla_core"
        )


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
    """Build ``onnx_path`` into plan bytes. ``compute_capabilities`` (e.g. ``["8.6"]``) is for
    TensorRT for RTX builds on a machine without a GPU."""
    report = BuildReport()
    sink: list[str] = []
    logger = _logger(trt, sink)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(trt, builder, plan, onnx_path, logger)
    report.layers = network.num_layers
    config = builder.create_builder_config()
    if plan.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mib << 20)
    if plan.optimization_level is not None:
        config.builder_optimization_level = plan.optimization_level
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    _apply_profiles(builder, network, config, plan)
    if compute_capabilities:
        config.num_compute_capabilities = len(compute_capabilities)
        for i, cc in enumerate(compute_capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, "SM" + cc.replace(".", "")), i)
        report.compute_capabilities = list(compute_capabilities)
    if plan.policy_mode == "layer-constraints":
        _apply_float_layers(trt, network, float_layers, report)
    if plan.dla_core is not None:
        _apply_dla(trt, builder, network, config, plan, report)

    calibrator = None
    if plan.calibrator:
        from edge_se.tensorrt.calibrator import make_calibrator

        batch = plan.calibration_shape[0] if plan.calibration_shape else plan.profiles[0].opt[0]
        calibrator = make_calibrator(trt, plan.calibrator, calibration_batches, batch,
                                     calibration_cache_in, calibration_cache_out)
        config.int8_calibrator = calibrator
        if plan.calibration_profile is not None:
            cal = builder.create_optimization_profile()
            name = plan.profiles[0].input
            shape = tuple(plan.calibration_profile)
            cal.set_shape(name, shape, shape, shape)
            config.set_calibration_profile(cal)

    # Timing cache: loaded if present, saved after the build (a no-op in TensorRT for RTX).
    cache_path = Path(plan.timing_cache) if plan.timing_cache and plan.flavor == "tensorrt" else None
    if cache_path is not None:
        cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(cache_bytes), False)

    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            report.calibration_batches = calibrator.batches_used
            calibrator.free()
    if serialized is None:
        errors = " | ".join(m for m in sink if m.startswith(("ERROR", "INTERNAL_ERROR"))) or "no error message"
        raise ExportError(f"TensorRT {plan.tensorrt_version} failed to build the engine: {errors}")
    if cache_path is not None:
        from edge_se.bundle import atomic_write_bytes

        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
        report.timing_cache = str(cache_path)
    if calibration_cache_out is not None and calibration_cache_out.is_file():
        report.calibration_cache = str(calibration_cache_out)
    report.warnings += [m for m in sink if m.startswith("WARNING")][:20]
    return bytes(serialized), report
