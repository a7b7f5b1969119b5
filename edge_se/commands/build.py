"""``edge-se build BUNDLE --recipe FILE``: build the recipe's TensorRT engine on this device."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_se.commands._common import trt_version_arg

NAME = "build"
HELP = "build a TensorRT engine from a bundle and a recipe (on the device that will run it)"
DESCRIPTION = (
    "Build the TensorRT engine a recipe describes from a bundle's ONNX artifacts, with the path the "
    "installed TensorRT needs (8.5-10.x: builder flags and calibrators; 11.x: strongly typed Q/DQ / "
    "Cast graphs). Writes <name>.engine, its sidecar <name>.engine.json and build_<name>.sh (the "
    "equivalent trtexec command for that TensorRT). Engines only run on the GPU model and TensorRT "
    "version that built them: build on the device itself."
)
EXAMPLES = (
    "  edge-se build bundles/se18 --recipe export/jetson-orin-int8.toml\n"
    "  edge-se build bundles/se18 --recipe export/jetson-xavier-fp16.toml --script-only 8.5\n"
    "  edge-se build bundles/se18 --recipe export/jetson-orin-int8.toml --calib calib/digits --json\n"
    "  EDGE_SE_TENSORRT=tensorrt_rtx edge-se build bundles/se18 --recipe export/desktop-int8-trt11.toml"
)
ORDER = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder (from 'edge-se export')")
    p.add_argument("--recipe", type=Path, required=True, help="recipe TOML (see export/*.toml)")
    p.add_argument("--out", type=Path, help="write the engine, sidecar and script here instead of into the bundle")
    p.add_argument("--script-only", metavar="TRT_VERSION", type=trt_version_arg,
                   help="only write build_<name>.sh for this TensorRT version, dotted (10.3, 8.5; no TensorRT needed)")
    p.add_argument("--calib", type=Path, metavar="PATH",
                   help="INT8 calibrator path: a calibration set folder ('edge-se calibrate') or a TensorRT "
                        "calibration cache file (default: the cache 'edge-se quantize' wrote into the bundle)")
    # deprecated spellings of --calib (hidden; one note line when used)
    p.add_argument("--calibration-cache", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--calibration-set", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--timing-cache", type=Path, help="timing cache file (overrides the recipe's build.timing_cache)")
    p.add_argument("--tensorrt", choices=("tensorrt", "tensorrt_rtx"),
                   help="which TensorRT bindings to use (default: $EDGE_SE_TENSORRT or tensorrt)")
    p.add_argument("--compute-capability", action="append", default=[], metavar="X.Y",
                   help="TensorRT for RTX only: GPU architecture(s) to build for when this machine has no GPU")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the GPU check of the engine against PyTorch and the latency measurement")


def calib_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """``(calibration cache, calibration set)`` from ``--calib`` or its deprecated spellings."""
    from edge_se.commands._output import deprecated
    from edge_se.errors import InputError

    cache, cset = args.calibration_cache, args.calibration_set
    for old, given in (("--calibration-cache", cache), ("--calibration-set", cset)):
        if given is not None:
            deprecated(old, "--calib PATH")
            if not given.exists():
                raise InputError(f"{old} {given} does not exist")
    if args.calib is None:
        return cache, cset
    if cache is not None or cset is not None:
        raise InputError("--calib replaces --calibration-cache and --calibration-set; give --calib only")
    from edge_se.tensorrt.build import split_calib

    return split_calib(args.calib)


def run(args: argparse.Namespace) -> int:
    from edge_se.commands._output import emit_json
    from edge_se.errors import InputError
    from edge_se.progress import info
    from edge_se.tensorrt.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    calibration_cache, calibration_set = calib_paths(args)
    doc = {"command": "build", "bundle": str(args.bundle), "recipe": str(args.recipe)}
    if args.script_only:
        from edge_se.tensorrt.build import script_only
        from edge_se.tensorrt.versions import parse_version

        script = script_only(args.bundle, recipe, parse_version(args.script_only))
        info(f"wrote {script}; run it on the {recipe.target.name} device")
        if args.json:
            emit_json({**doc, "ok": True, "script_only": True, "tensorrt_version": args.script_only,
                       "target": recipe.target.name, "script": str(script), "engine": None})
        return 0
    if args.compute_capability and (args.tensorrt or "") != "tensorrt_rtx":
        import os

        if os.environ.get("EDGE_SE_TENSORRT") != "tensorrt_rtx":
            raise InputError("--compute-capability applies to TensorRT for RTX only; add --tensorrt tensorrt_rtx")
    from edge_se.tensorrt.build import build_bundle_engine

    record = build_bundle_engine(
        args.bundle, recipe, out=args.out, flavor=args.tensorrt,
        calibration_cache=calibration_cache, calibration_set=calibration_set,
        compute_capabilities=args.compute_capability, timing_cache=args.timing_cache,
    )
    build = record.get("build", {})
    if build.get("gpu_fallback_layers") is not None:
        info(f"DLA: {build['dla_layers']} layers on DLA, {build['gpu_fallback_layers']} fell back to the GPU")
    for note in record.get("plan", {}).get("notes", []):
        info(f"note: {note}")
    info(f"built {record['path']} (TensorRT {record['tensorrt']}, {record['plan']['path']})")
    doc.update(ok=True, script_only=False, tensorrt_version=record.get("tensorrt"), target=recipe.target.name,
               engine=record["path"], sidecar=record.get("sidecar"), script=record.get("trtexec_script") or
               record.get("script"), precision_path=record.get("plan", {}).get("path"), validation=None)
    if args.no_validate or args.out or record.get("tensorrt_flavor") != "tensorrt":
        why = "--no-validate" if args.no_validate else "engine outside the bundle or not a TensorRT engine this machine runs"
        info(f"numerical validation skipped ({why})")
        if args.json:
            emit_json({**doc, "validation": {"skipped": why}})
        return 0
    from edge_se.errors import CheckFailed
    from edge_se.tensorrt.validation import validate_engine

    check = validate_engine(str(args.bundle), record["path"])
    lat = check["latency"]
    info(f"vs {check['reference']}: {'passed' if check['passed'] else 'FAILED'}; latency median "
         f"{lat['median_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms (batch {check['latency_batch']})")
    if not check["passed"]:
        raise CheckFailed(f"{record['path']} differs from the reference: {check['reason']}")
    if args.json:
        emit_json({**doc, "validation": {"passed": True, "reference": check["reference"], "latency_ms": lat,
                                         "latency_batch": check["latency_batch"]}})
    return 0
