"""``edge-se calibrate``: build a calibration set (preprocessed, sharded, hashed) from a TOML spec."""

from __future__ import annotations

import argparse
import json

NAME = "calibrate"
ORDER = 20
HELP = "build a calibration set for INT8 from a spec (folder, digits or sample images)"
DESCRIPTION = (
    "Build the calibration set described by SPEC (a TOML file, see calibration/*.toml and\n"
    "calibration/README.md) into DIR: preprocessed float32 shards (<= 256 samples each), labels when\n"
    "the source has classes, and manifest.json with the preprocessing, shapes, the spec's sha256 and\n"
    "each source file's sha256. Grayscale/RGBA/CMYK images are converted and counted. Nothing is\n"
    "written unless the whole set was built. Pass DIR to 'edge-se quantize --calib DIR'."
)
EXAMPLES = """  edge-se calibrate calibration/digits.toml --out calib/digits
  edge-se calibrate calibration/imagenet-folder.toml --out calib/imnet --count 1024 --skip-bad
  edge-se calibrate calibration/sample-images.toml --out calib/demo --force --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="calibration spec (TOML)")
    p.add_argument("--out", required=True, help="folder to create for the set")
    p.add_argument("--count", type=int, help="number of samples (overrides selection.count)")
    p.add_argument("--skip-bad", action="store_true",
                   help="folder sources: skip undecodable images (listed in the manifest) instead of refusing")
    p.add_argument("--force", action="store_true", help="replace an existing calibration set at --out")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edge_se.calibration import build_calibration_set, load_calibration_set, load_spec
    from edge_se.errors import CalibrationError
    from edge_se.progress import stage

    spec = load_spec(args.spec)
    if args.count is not None:
        spec = spec.with_count(args.count)
    if args.skip_bad:
        if spec.kind != "folder":
            raise CalibrationError(f"--skip-bad applies to folder sources only; {args.spec} has kind {spec.kind!r}")
        spec = replace(spec, skip_bad=True)
    with stage(f"calibration set from {args.spec}") as st:
        out = build_calibration_set(spec, args.out, force=args.force)
        calib = load_calibration_set(out)
        st["detail"] = f"{calib.count} samples {list(calib.sample_shape)} -> {out}"
    m = calib.manifest
    summary = {
        "out": str(out), "count": calib.count, "shape": list(calib.shape), "dtype": m["dtype"],
        "counts_per_class": m["counts_per_class"], "converted": m["converted"],
        "skipped": [s["path"] for s in m["skipped"]], "sha256": calib.sha256,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"calibration set {out}: {calib.count} samples of {list(calib.sample_shape)} {m['dtype']}, "
              f"manifest sha256 {calib.sha256[:16]}")
        if m["counts_per_class"]:
            print("per class: " + ", ".join(f"{k} {v}" for k, v in m["counts_per_class"].items()))
        if m["converted"]["count"]:
            print(f"converted to {m['converted']['to']}: "
                  + ", ".join(f"{n} {mode}" for mode, n in m["converted"]["by_mode"].items()))
        if m["skipped"]:
            print(f"skipped {len(m['skipped'])} undecodable: " + ", ".join(summary["skipped"]))
    return 0
