"""Version dispatch: which build path a recipe takes with a given TensorRT.

``plan_build(recipe, version, flavor)`` is pure (no TensorRT import): it decides the ONNX
artifact, network-creation flags, builder flags, calibrator, calibration profile, how the
precision policy is applied and the profiles. The builder and the trtexec script generator both
follow the plan, so what the Python build does and what the script does are the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge_se.tensorrt.recipe import Recipe, RecipeError
from edge_se.tensorrt.versions import (
    CLASSIC,
    STRONGLY_TYPED,
    Version,
    era,
    format_version,
    has_dla_support,
)

#: Bundle artifact names (fixed by the bundle format).
ONNX_FP32 = "model.onnx"
ONNX_FP16 = "model.fp16.onnx"
ONNX_INT8_QDQ = "model.int8.trt.onnx"

#: From 10.0 networks are explicit-batch by default (EXPLICIT_BATCH deprecated).
_EXPLICIT_BATCH_DEFAULT_FROM: Version = (10, 0)


@dataclass(frozen=True)
class Profile:
    """One optimization profile for one input: NCHW min/opt/max."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass
class BuildPlan:
    """Everything version-dependent about one build; JSON-serializable with ``to_dict``."""

    tensorrt_version: str
    flavor: str
    era: str
    path: str  # "fp32" | "fp16-flag" | "fp16-typed" | "int8-calibrator" | "int8-qdq"
    onnx_artifact: str
    strongly_typed: bool
    network_flags: list[str]
    builder_flags: list[str]
    calibrator: str | None
    calibration_profile: tuple[int, ...] | None
    calibration_shape: tuple[int, ...] | None
    policy: str
    policy_mode: str  # "none" | "layer-constraints" | "in-graph"
    profiles: list[Profile]
    dla_core: int | None
    gpu_fallback: bool
    workspace_mib: int | None
    optimization_level: int | None
    timing_cache: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_profiles(recipe: Recipe, input_name: str) -> list[Profile]:
    """The recipe's min/opt/max shapes as one profile for the model's image input."""
    lo, opt, hi = recipe.shapes()
    return [Profile(input_name, lo, opt, hi)]


def plan_build(recipe: Recipe, version: Version, flavor: str = "tensorrt", input_name: str = "input") -> BuildPlan:
    """Pick the build path for ``recipe`` with TensorRT ``version`` (``flavor``: tensorrt | tensorrt_rtx)."""
    where = str(recipe.path or recipe.name)
    v = format_version(version)
    if flavor == "tensorrt" and not recipe.tensorrt.contains(version):
        raise RecipeError(
            f"{where}: TensorRT {v} is installed but the recipe targets {recipe.tensorrt}; "
            f"use a recipe for TensorRT {v} or install a TensorRT in that range"
        )
    e = era(version, flavor)
    notes: list[str] = []
    net_flags: list[str] = []
    flags: list[str] = []
    calibrator = None
    calib_profile = None
    calib_shape = None
    profiles = compute_profiles(recipe, input_name)

    if recipe.precision == "fp32":
        path, onnx = "fp32", ONNX_FP32
    elif recipe.precision == "fp16":
        if e == CLASSIC:
            path, onnx = "fp16-flag", ONNX_FP32
            flags.append("FP16")
        else:
            path, onnx = "fp16-typed", ONNX_FP16
    else:
        mode = recipe.int8_mode
        if mode == "calibrator" and e == STRONGLY_TYPED:
            raise RecipeError(
                f"{where}: precision.int8 = \"calibrator\" but TensorRT {v} ({flavor}) has no calibrators; "
                "use int8 = \"qdq\" or \"auto\""
            )
        if mode == "auto":
            mode = "calibrator" if e == CLASSIC else "qdq"
            notes.append(f"precision.int8 = auto -> {mode} on TensorRT {v}")
        if mode == "calibrator":
            path, onnx = "int8-calibrator", ONNX_FP32
            flags += ["INT8", "FP16"]
            calibrator = recipe.calibrator
            b = recipe.calibration_batch or recipe.batch[1]
            calib_shape = (b, *profiles[0].opt[1:])
            if version < (10, 0):
                # TRT 8.x: a static calibration profile, required with dynamic shapes.
                calib_profile = calib_shape
            else:
                # No static calibration profile of edge-se's own on 10.x (set_calibration_profile
                # is deprecated there): Polygraphy's CreateConfig passes the build profile, and
                # calibration runs at its opt shape, so the batches use it.
                calib_shape = profiles[0].opt
                notes.append(
                    "TensorRT 10.x: no calibration profile of its own (deprecated API; Polygraphy passes the "
                    f"build profile); calibration runs at the opt shape {list(calib_shape)}"
                )
        else:
            path, onnx = "int8-qdq", ONNX_INT8_QDQ
            if e == CLASSIC:
                # Explicit quantization on 8.x/10.x: INT8 + FP16 let the builder choose kernels
                # around the Q/DQ pairs (NVIDIA's explicit-quantization guide).
                flags += ["INT8", "FP16"]

    strongly_typed = e == STRONGLY_TYPED or path == "fp16-typed"
    if flavor == "tensorrt" and version < _EXPLICIT_BATCH_DEFAULT_FROM:
        net_flags.append("EXPLICIT_BATCH")  # required for ONNX on 8.x
    # 10.x: explicit batch is the default; 11.x and RTX: strongly typed always (flag deprecated).

    policy = recipe.policy
    if path == "int8-qdq" and not recipe.policy_set:
        policy = "auto"
        notes.append(f"precision.policy not set: the Q/DQ build follows {ONNX_INT8_QDQ} as the INT8 stage made it "
                     "(policy auto)")
    policy_mode = "none"
    if recipe.precision != "fp32" and policy != "all":
        policy_mode = "in-graph" if (strongly_typed or path == "int8-qdq") else "layer-constraints"
        if policy_mode == "layer-constraints":
            flags.append("OBEY_PRECISION_CONSTRAINTS")

    if recipe.dla_core is not None:
        if flavor != "tensorrt" or not has_dla_support(version):
            raise RecipeError(f"{where}: DLA requested but TensorRT {v} ({flavor}) has no DLA support")
        if recipe.gpu_fallback:
            flags.append("GPU_FALLBACK")
    if recipe.optimization_level is not None and version < (8, 6) and flavor == "tensorrt":
        raise RecipeError(
            f"{where}: build.optimization_level needs TensorRT >= 8.6, installed is {v}; remove it from the recipe"
        )
    return BuildPlan(
        tensorrt_version=v,
        flavor=flavor,
        era=e,
        path=path,
        onnx_artifact=onnx,
        strongly_typed=strongly_typed,
        network_flags=net_flags,
        builder_flags=flags,
        calibrator=calibrator,
        calibration_profile=calib_profile,
        calibration_shape=calib_shape,
        policy=policy,
        policy_mode=policy_mode,
        profiles=profiles,
        dla_core=recipe.dla_core,
        gpu_fallback=recipe.gpu_fallback,
        workspace_mib=recipe.workspace_mib,
        optimization_level=recipe.optimization_level,
        timing_cache=str(recipe.timing_cache) if recipe.timing_cache else None,
        notes=notes,
    )
