"""``edge-se export-deepstream BUNDLE --out DIR``: a DeepStream nvinfer config from a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export-deepstream"
HELP = "write a DeepStream nvinfer config (config_infer_primary.txt + model files) from a bundle"
DESCRIPTION = (
    "Write DIR/config_infer_primary.txt for DeepStream's Gst-nvinfer with the files it names (ONNX, optional "
    "engine, INT8 calibration cache, classifier labels), copied sha256-checked. net-scale-factor and offsets come "
    "from the bundle's mean/std, network-mode from the precision, infer-dims and output-blob-names from the "
    "manifest. What nvinfer cannot reproduce (one scale for all channels, no resize + center crop) is printed and "
    "written into the config; --exact builds the normalization into the ONNX instead (validated on ONNX Runtime)."
)
EXAMPLES = (
    "  edge-se export-deepstream bundles/se18 --out ds_se18\n"
    "  edge-se export-deepstream bundles/se18 --out ds_se18 --precision int8 --exact --batch-size 4\n"
    "  edge-se export-deepstream bundles/se18 --out ds_se18 --engine orin-int8.engine --frame-size 1920x1080"
)
ORDER = 56


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge_se.serving.deepstream import PRECISIONS

    p.add_argument("bundle", type=Path, help="bundle folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write (new, empty, or an edge-se one with --force)")
    p.add_argument("--onnx", help="the ONNX artifact nvinfer builds from (default: model.onnx, or the TensorRT Q/DQ "
                                  "file for --precision int8)")
    p.add_argument("--engine", help="a TensorRT engine artifact of the bundle for model-engine-file (its precision "
                                    "and ONNX are used)")
    p.add_argument("--precision", choices=PRECISIONS, help="network-mode (default: the engine's, else fp32)")
    p.add_argument("--batch-size", type=int, default=1, help="nvinfer batch-size (default 1)")
    p.add_argument("--exact", action="store_true", help="prepend the bundle's normalization to the ONNX "
                   "(model.normalized.onnx, net-scale-factor=1, zero offsets), validated on ONNX Runtime")
    p.add_argument("--frame-size", metavar="WxH", help="frame size nvinfer sees: prints the "
                   "nvvideoconvert src-crop that reproduces the bundle's resize + center crop")
    p.add_argument("--gpu-id", type=int, default=0, help="gpu-id (default 0)")
    p.add_argument("--force", action="store_true", help="replace --out if it is an edge-se-written folder")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edge_se.progress import info
    from edge_se.serving.deepstream import DeepStreamOptions, export_deepstream, parse_frame_size

    opts = DeepStreamOptions(onnx=args.onnx, engine=args.engine, precision=args.precision,
                             batch_size=args.batch_size, exact=args.exact, frame_size=parse_frame_size(args.frame_size) if args.frame_size else None,
                             gpu_id=args.gpu_id)
    result = export_deepstream(args.bundle, args.out, opts, force=args.force)
    for caveat in result.caveats:
        info(f"note: {escape(caveat)}")
    checked = f"; normalized ONNX matches the original to {result.exact_error:.1e}" if result.exact_error is not None \
        else ""
    info(f"wrote {result.config_path} ({result.precision}, {result.onnx_file}{checked}); use it as nvinfer's "
         f"config-file-path")
    if args.json:
        from edge_se.commands._output import emit_json

        emit_json({"command": "export-deepstream", "ok": True, "bundle": str(args.bundle), "out": str(args.out),
                   "config": str(result.config_path), "precision": result.precision, "onnx": str(result.onnx_file),
                   "exact_error": result.exact_error, "caveats": list(result.caveats)})
    return 0
