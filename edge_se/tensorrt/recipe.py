"""Recipes: one TOML file per model x target x precision (``export/*.toml``).

Read by ``edge-se export --recipe FILE`` (model, input shape, dynamic range, precision, policy,
calibration spec) and ``edge-se build BUNDLE --recipe FILE`` (everything). The format::

    name = "jetson-orin-int8"                 # optional; defaults to the file stem
    description = "..."                        # optional

    [model]
    spec = "se_resnet18"                       # zoo name, torchvision:/timm:/file.py:factory
    checkpoint = "weights/se18.pt"             # optional, relative to the recipe
    input_shape = [1, 3, 224, 224]             # NCHW at the optimum (opt batch, opt resolution)
    batch = [1, 4, 8]                          # min, opt, max batch (optional: static batch)
    resolution = [[160, 160], [224, 224], [288, 288]]   # optional min/opt/max H, W

    [target]
    name = "jetson-orin"                       # jetson-orin | jetson-xavier | jetson-nano | desktop
    tensorrt = ">=10.3,<10.4"                  # the TensorRT versions the recipe is meant for
    dla_core = 0                               # optional; needs a target with DLA
    gpu_fallback = true                        # DLA layers that cannot run there go to the GPU

    [precision]
    mode = "int8"                              # fp32 | fp16 | int8
    int8 = "auto"                              # auto | calibrator | qdq (see docs/tensorrt.md)
    policy = "keep-gates"                      # all | keep-gates | auto (unset: keep-gates; a Q/DQ build: auto)
    calibrator = "entropy2"                    # entropy2 | minmax (calibrator path only)

    [calibration]
    spec = "../calibration/digits.toml"        # calibration-set spec, relative to the recipe
    batch = 8                                  # calibration batch (within the batch range)

    [build]
    workspace_mib = 2048
    optimization_level = 3                     # 0-5, TensorRT >= 8.6
    timing_cache = "timing/orin.cache"          # inside the recipe folder; loaded if present, saved after the build

Unknown keys, wrong types and impossible combinations are refused with the reason.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_se.errors import BundleError, InputError
from edge_se.tensorrt.versions import (
    KNOWN_VERSIONS,
    MIN_SUPPORTED,
    STRONGLY_TYPED_FROM,
    Target,
    VersionRange,
    format_version,
    has_dla_support,
    target,
)
from edge_se.trust import confined_path, safe_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib


class RecipeError(InputError):
    """A recipe file is malformed or asks for an impossible combination."""


PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("auto", "calibrator", "qdq")
POLICIES = ("all", "keep-gates", "auto")
CALIBRATORS = ("entropy2", "minmax")

_SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "model": {
        "spec": str, "checkpoint": str, "input_shape": list, "input_name": str,
        "batch": list, "resolution": list,
    },
    "target": {"name": str, "tensorrt": str, "dla_core": int, "gpu_fallback": bool},
    "precision": {"mode": str, "int8": str, "policy": str, "calibrator": str},
    "calibration": {"spec": str, "batch": int},
    "build": {"workspace_mib": int, "optimization_level": int, "timing_cache": str},
}
_REQUIRED = {"model": ("spec", "input_shape"), "target": ("name", "tensorrt"), "precision": ("mode",)}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. Paths are absolute (resolved against the recipe's folder)."""

    name: str
    path: Path | None
    sha256: str
    model_spec: str
    input_shape: tuple[int, ...]
    batch: tuple[int, int, int]
    resolution: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None
    target: Target
    tensorrt: VersionRange
    precision: str
    int8_mode: str = "auto"
    policy: str = "all"
    #: whether the recipe names precision.policy (without one, a Q/DQ build follows the file: auto)
    policy_set: bool = True
    calibrator: str = "entropy2"
    checkpoint: Path | None = None
    input_name: str | None = None
    dla_core: int | None = None
    gpu_fallback: bool = True
    calibration_spec: Path | None = None
    calibration_batch: int | None = None
    workspace_mib: int | None = None
    optimization_level: int | None = None
    timing_cache: Path | None = None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dynamic_batch(self) -> bool:
        return self.batch[0] != self.batch[2]

    @property
    def dynamic_resolution(self) -> bool:
        return self.resolution is not None and self.resolution[0] != self.resolution[2]

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """min, opt, max NCHW shapes of the (single) image input."""
        c = self.input_shape[1]
        res = self.resolution or (tuple(self.input_shape[2:]),) * 3
        return tuple((b, c, *hw) for b, hw in zip(self.batch, res))  # type: ignore[return-value]

    def engine_name(self) -> str:
        """The bundle artifact name of the engine this recipe builds."""
        return f"{self.target.name}.engine" if self.name == self.target.name else f"{self.name}.engine"


# ------------------------------------------------------------------------------ checking
def _check_keys(table: dict[str, Any], schema: dict[str, Any], prefix: str, where: str) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in schema:
            valid = ", ".join(f"{prefix}{k}" for k in schema)
            raise RecipeError(f"{where}: unknown key '{name}'; valid keys here: {valid}")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: '{name}' must be a table [{name}], got {type(value).__name__}")
            _check_keys(value, expected, f"{name}.", where)
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise RecipeError(f"{where}: key '{name}' must be a {expected.__name__}, got {value!r}")


def _choice(key: str, value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise RecipeError(f"{where}: '{key}' must be one of {' | '.join(allowed)}, got {value!r}")
    return value


def _ints(key: str, value: Any, n: int | None, where: str) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok or (n is not None and len(value) != n):
        size = f"{n} " if n else ""
        raise RecipeError(f"{where}: '{key}' must be a list of {size}positive integers, got {value!r}")
    return tuple(value)


def _ordered(key: str, triple: tuple[int, int, int], where: str) -> None:
    if not triple[0] <= triple[1] <= triple[2]:
        raise RecipeError(f"{where}: '{key}' must be ordered min <= opt <= max, got {list(triple)}")


def _path(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def _written_path(value: str | None, base: Path, key: str, where: str) -> Path | None:
    """A path the build writes to: relative to the recipe's folder and inside it (a recipe is data)."""
    if not value:
        return None
    try:
        if value.startswith("~"):
            raise BundleError("home-relative")
        return confined_path(base, value, key).resolve()
    except BundleError:
        raise RecipeError(
            f"{where}: {key} {value!r} must be a relative path inside the recipe's folder (no '..', not absolute), "
            "since the build writes it; pass --timing-cache PATH on the command line for another place"
        ) from None


def parse_recipe(data: dict[str, Any], where: str, base_dir: Path, text: str = "") -> Recipe:
    """Validate a parsed TOML document; ``base_dir`` anchors relative paths."""
    _check_keys(data, _SCHEMA, "", where)
    for section, keys in _REQUIRED.items():
        for key in keys:
            if key not in data.get(section, {}):
                raise RecipeError(f"{where}: missing key '{section}.{key}'; see docs/tensorrt.md for the recipe format")
    model, tgt = data["model"], data["target"]
    prec, calib, build = data["precision"], data.get("calibration", {}), data.get("build", {})

    shape = _ints("model.input_shape", model["input_shape"], 4, where)
    batch = _ints("model.batch", model.get("batch", [shape[0]] * 3), 3, where)
    _ordered("model.batch", batch, where)  # type: ignore[arg-type]
    if batch[1] != shape[0]:
        raise RecipeError(f"{where}: model.input_shape batch {shape[0]} must equal the opt batch {batch[1]} of model.batch")
    resolution = None
    if "resolution" in model:
        res = model["resolution"]
        if not (isinstance(res, list) and len(res) == 3):
            raise RecipeError(f"{where}: 'model.resolution' must be [[minH, minW], [optH, optW], [maxH, maxW]], got {res!r}")
        resolution = tuple(_ints("model.resolution", r, 2, where) for r in res)
        for i, axis in enumerate("HW"):
            _ordered(f"model.resolution ({axis})", tuple(r[i] for r in resolution), where)  # type: ignore[arg-type]
        if tuple(shape[2:]) != resolution[1]:
            raise RecipeError(
                f"{where}: model.input_shape H, W {list(shape[2:])} must equal the opt resolution {list(resolution[1])}"
            )

    try:
        t = target(tgt["name"])
        rng = VersionRange.parse(tgt["tensorrt"])
    except InputError as e:
        raise RecipeError(f"{where}: {e}") from None
    mode = _choice("precision.mode", prec["mode"], PRECISIONS, where)
    if mode == "int8" and not t.int8:
        raise RecipeError(f"{where}: target {t.name} has no INT8 support ({t.description}); use precision.mode = \"fp16\"")
    if mode == "fp16" and not t.fp16:
        raise RecipeError(f"{where}: target {t.name} has no fast FP16 ({t.description}); use precision.mode = \"fp32\"")
    known = [v for v in KNOWN_VERSIONS if v >= MIN_SUPPORTED]
    admitted = in_range = rng.admits_any(known)
    if not admitted:
        raise RecipeError(
            f"{where}: target.tensorrt {rng} admits no TensorRT edge-se supports "
            f"({format_version(MIN_SUPPORTED)} to {format_version(known[-1])}.x)"
        )
    if t.shipped is not None:
        on_device = [v for v in t.shipped if rng.contains(v) and v >= MIN_SUPPORTED]
        if not on_device:
            raise RecipeError(
                f"{where}: target {t.name}: {t.shipped_note}; target.tensorrt {rng} admits none of them that "
                f"edge-se supports (>= {format_version(MIN_SUPPORTED)}). Engines must be built on the device "
                "with its own TensorRT"
            )
        admitted = on_device
    classic = [v for v in admitted if v < STRONGLY_TYPED_FROM]
    typed = [v for v in admitted if v >= STRONGLY_TYPED_FROM]

    int8_mode = _choice("precision.int8", prec.get("int8", "auto"), INT8_MODES, where)
    policy = _choice("precision.policy", prec.get("policy", "all" if mode != "int8" else "keep-gates"), POLICIES, where)
    calibrator = _choice("precision.calibrator", prec.get("calibrator", "entropy2"), CALIBRATORS, where)
    for key in ("int8", "calibrator"):
        if key in prec and mode != "int8":
            raise RecipeError(f"{where}: 'precision.{key}' applies only to precision.mode = \"int8\", not {mode!r}; remove it")
    if mode == "int8" and int8_mode == "calibrator" and typed:
        raise RecipeError(
            f"{where}: precision.int8 = \"calibrator\" but target.tensorrt {rng} admits TensorRT 11+, which removed "
            "calibrators; use int8 = \"qdq\" (or \"auto\"), or limit target.tensorrt to <11"
        )
    if mode == "int8" and int8_mode in ("auto", "calibrator") and classic and "spec" not in calib:
        raise RecipeError(
            f"{where}: INT8 with the calibrator path (TensorRT {format_version(classic[0])}) needs "
            "[calibration] spec = \"...\"; add it, or set precision.int8 = \"qdq\""
        )

    dla_core = tgt.get("dla_core")
    if dla_core is not None:
        if t.dla_cores == 0:
            raise RecipeError(f"{where}: target.dla_core is set but target {t.name} has no DLA ({t.description}); remove it")
        if not 0 <= dla_core < t.dla_cores:
            raise RecipeError(f"{where}: target.dla_core {dla_core} out of range; {t.name} has DLA cores 0-{t.dla_cores - 1}")
        gap = [v for v in in_range if not has_dla_support(v)]
        if gap:
            raise RecipeError(
                f"{where}: DLA requested but target.tensorrt {rng} admits TensorRT "
                f"{', '.join(format_version(v) for v in gap)}, which has no DLA on Jetson (11.0 to 11.4.0; "
                "11.4.1 restores it on Orin with JetPack 7.2.2); limit target.tensorrt to a version with DLA (10.x, >=11.4.1)"
            )
        if batch[0] != batch[2] or (resolution and resolution[0] != resolution[2]):
            raise RecipeError(
                f"{where}: DLA needs static shapes (min = opt = max), but model.batch is {list(batch)}"
                f"{'' if not resolution else ' / model.resolution varies'}; make them equal or drop target.dla_core"
            )
    if "gpu_fallback" in tgt and dla_core is None:
        raise RecipeError(f"{where}: 'target.gpu_fallback' applies only with target.dla_core; remove it")

    calib_batch = calib.get("batch")
    if calib_batch is not None and not batch[0] <= calib_batch <= batch[2]:
        raise RecipeError(f"{where}: calibration.batch {calib_batch} is outside model.batch [{batch[0]}, {batch[2]}]")
    if calib_batch is not None and calib_batch <= 0:
        raise RecipeError(f"{where}: calibration.batch must be positive, got {calib_batch}")
    ws = build.get("workspace_mib")
    if ws is not None and ws <= 0:
        raise RecipeError(f"{where}: build.workspace_mib must be positive, got {ws}")
    level = build.get("optimization_level")
    if level is not None:
        if not 0 <= level <= 5:
            raise RecipeError(f"{where}: build.optimization_level must be 0-5, got {level}")
        if all(v < (8, 6) for v in admitted):
            raise RecipeError(f"{where}: build.optimization_level needs TensorRT >= 8.6, target.tensorrt is {rng}; remove it")

    # The name becomes file names (<name>.engine, build_<name>.sh) and is pasted into scripts.
    name = data.get("name") or Path(where).stem
    try:
        safe_name(name, "name" if data.get("name") else "name (the file name's stem)", where)
    except BundleError as e:
        raise RecipeError(f"{e}; set name = \"...\" in the recipe") from None

    return Recipe(
        name=name,
        path=Path(where) if where.endswith(".toml") else None,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        model_spec=model["spec"],
        input_shape=shape,
        batch=batch,  # type: ignore[arg-type]
        resolution=resolution,  # type: ignore[arg-type]
        target=t,
        tensorrt=rng,
        precision=mode,
        int8_mode=int8_mode,
        policy=policy,
        policy_set="policy" in prec,
        calibrator=calibrator,
        checkpoint=_path(model.get("checkpoint"), base_dir),
        input_name=model.get("input_name"),
        dla_core=dla_core,
        gpu_fallback=tgt.get("gpu_fallback", True),
        calibration_spec=_path(calib.get("spec"), base_dir),
        calibration_batch=calib_batch,
        workspace_mib=ws,
        optimization_level=level,
        timing_cache=_written_path(build.get("timing_cache"), base_dir, "build.timing_cache", where),
        description=data.get("description", ""),
        raw=data,
    )


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist; the shipped recipes are in export/*.toml")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None
    return parse_recipe(data, str(path), path.resolve().parent, text)
