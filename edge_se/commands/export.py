"""``edge-se export``: a model spec to a validated TorchScript + simplified ONNX bundle."""

from __future__ import annotations

import argparse
import json
import re

from edge_se.commands._common import trt_version_arg

NAME = "export"
ORDER = 10
HELP = "export a model to a validated bundle (simplified ONNX, torch.export .pt2, TorchScript)"
DESCRIPTION = (
    "Export MODEL to a bundle folder holding model.onnx (FP32, simplified), model.pt2 (torch.export,\n"
    "batch 1..--max-batch) and model.ts (TorchScript, traced and frozen; deprecated in torch 2.14),\n"
    "each validated against PyTorch on real images and seeded noise at batch 1 and a second batch size.\n"
    "Nothing is published unless every check passes. A model torch.export cannot capture still gets\n"
    "its bundle without model.pt2 (one note line; the log in the bundle's logs/) unless --formats\n"
    "names pt2. Opt-in formats: aoti (an AOTInductor package, model.aoti.pt2: needs a C++ compiler)\n"
    "and pte (ExecuTorch with XNNPACK, model.pte: needs 'pip install edge-se[executorch]').\n\n"
    "MODEL is one of: an ONNX file (model.onnx: checked, batch made dynamic where the graph allows,\n"
    "simplified; ONNX Runtime FP32 on the file as given is then the reference); a zoo name (see 'edge-se models'); torchvision:NAME; timm:NAME (needs\n"
    "'pip install edge-se[timm]'); or path/to/file.py:factory (a zero-argument function returning\n"
    "an nn.Module). No weights are ever downloaded: without --checkpoint the model is randomly\n"
    "initialized from a fixed seed, and the output and manifest say so.\n\n"
    "The trace records one path through forward(): Python control flow on tensor values (if x.mean() > 0,\n"
    "x.item(), ...) is frozen at the example input, and torch warns (TracerWarning). Such a warning fails\n"
    "the export, naming the file and line; --allow-tracer-warnings exports anyway and records them."
)
EXAMPLES = """  edge-se export se_resnet50 --input-shape 1x3x224x224 --out bundles/se50
  edge-se export torchvision:efficientnet_b0 --input-shape 1x3x224x224 --out bundles/effb0 --images photos/
  edge-se export my_net.py:build --checkpoint best.pt --input-shape 1x3x160x160 --out bundles/mine
  edge-se export se_resnet18 --input-shape=-1x3x224x224 --out bundles/se18   (-1: dynamic batch)
  edge-se export --recipe export/desktop-fp16-trt10.toml --out bundles/desk
  edge-se export received/model.onnx --out bundles/theirs --preprocessing theirs.toml
  edge-se export se_resnet50 --formats onnx,pt2,aoti,pte --max-batch 8 --out bundles/se50-all"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model.onnx, zoo name, torchvision:NAME, timm:NAME or file.py:factory")
    p.add_argument("--input-shape", help="NxCxHxW, e.g. 1x3x224x224 (default: the zoo model's own); a batch of -1 "
                   "(--input-shape=-1x3x224x224) means dynamic batch, the default anyway")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--checkpoint", help="state_dict to load (torch.load with weights_only=True)")
    p.add_argument("--model-option", action="append", default=[], metavar="NAME=VALUE",
                   help="an option for the model's builder, e.g. num_classes=10 (repeatable; recorded in the manifest "
                   "and reused when the reference is rebuilt)")
    p.add_argument("--images", help="folder of real images for validation (default: scikit-learn's sample images)")
    p.add_argument("--labels", help="text file with one class label per line, copied into the bundle")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: the newest TensorRT 8.5/8.6 parse; "
                   "an imported ONNX file newer than this is converted down)")
    p.add_argument("--preprocessing", metavar="FILE",
                   help="how images become inputs: a TOML or JSON file of preprocessing keys (resize, crop, color, scale, mean, "
                   "std, interpolation), top level or under [preprocessing] (default: ImageNet's for 3 channels)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dim to N of --input-shape (default: dynamic)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter (default torchscript: opset 17 capable, fastest; dynamo emits opset >= 18)")
    p.add_argument("--simplifier", choices=("onnxslim", "onnxsim", "none"), default="onnxslim",
                   help="graph simplifier, checked against the unsimplified graph (default onnxslim)")
    p.add_argument("--trt-version", default="10.1", type=trt_version_arg, metavar="TRT_VERSION",
                   help="TensorRT version for the op-support table, dotted (default 10.1)")
    p.add_argument("--recipe", help="a recipe TOML (export/*.toml) giving model, input shape and options")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--allow-tracer-warnings", action="store_true",
                   help="export even when tracing warns that a data-dependent branch or value was frozen "
                   "(TracerWarning); the warnings are recorded in the manifest (model.tracer_warnings)")
    p.add_argument("--formats", help="comma-separated artifacts, each then required: onnx (always), ts, pt2, aoti, pte "
                   "(default onnx,ts,pt2 with pt2 best effort); aoti and pte imply pt2")
    p.add_argument("--max-batch", type=int, default=8,
                   help="top of the batch range of the torch.export artifacts (pt2, aoti, pte; default 8); ONNX keeps an open batch")
    # let '--input-shape -1x3x224x224' through as a value, like argparse does for '-1' (private but
    # long-stable attribute; without it, '--input-shape=-1x3x224x224' still works)
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-1[xX*,]\S*$")


def run(args: argparse.Namespace) -> int:
    from edge_se.errors import InputError
    from edge_se.export.checks import dynamic_batch_requested, parse_input_shape
    from edge_se.export.onnx_import import is_onnx_path
    from edge_se.export.pipeline import export_bundle
    from edge_se.models.loading import parse_model_option
    from edge_se.preprocess import PreprocessSpec
    from edge_se.runtime.cli_args import read_spec_file

    model, shape, dynamic = args.model, None, not args.static_batch
    if args.recipe:
        from edge_se.tensorrt.recipe import load_recipe

        recipe = load_recipe(args.recipe)
        model = model or recipe.model_spec
        shape = tuple(recipe.input_shape)
        dynamic = recipe.dynamic_batch and not args.static_batch
        if args.checkpoint is None and recipe.checkpoint is not None:
            args.checkpoint = str(recipe.checkpoint)
    if not model:
        raise InputError("no MODEL given; pass model.onnx, a zoo name, torchvision:NAME, timm:NAME or file.py:factory "
                         "(or --recipe)")
    if args.input_shape is not None:  # '' is refused, not taken as "the default"
        shape = parse_input_shape(args.input_shape)
        if dynamic_batch_requested(args.input_shape):
            if args.static_batch:
                raise InputError(
                    f"--input-shape {args.input_shape} asks for a dynamic batch (-1) but --static-batch fixes it; "
                    "drop one of them (give a number for the batch to fix it)"
                )
            dynamic = True
    preprocessing = (None if args.preprocessing is None
                     else PreprocessSpec.from_dict(read_spec_file(args.preprocessing), where=args.preprocessing))
    if is_onnx_path(model):
        return _import_onnx(args, model, shape, dynamic, preprocessing)
    bundle = export_bundle(
        model, shape, args.out, preprocessing=preprocessing, checkpoint=args.checkpoint, images=args.images, opset=args.opset,
        dynamic_batch=dynamic, force=args.force, exporter=args.exporter, simplifier=args.simplifier,
        trt_version=args.trt_version, labels=args.labels, allow_tracer_warnings=args.allow_tracer_warnings,
        formats=args.formats, max_batch=args.max_batch,
        model_options=dict(parse_model_option(o) for o in args.model_option),
    )
    print_summary(bundle, as_json=args.json)
    return 0


def _import_onnx(args: argparse.Namespace, path: str, shape, dynamic: bool, preprocessing) -> int:
    """``edge-se export model.onnx``: options that need a PyTorch model are refused, not ignored."""
    from edge_se.errors import InputError
    from edge_se.export.onnx_import import import_onnx_bundle

    for flag, value in (("--checkpoint", args.checkpoint), ("--allow-tracer-warnings", args.allow_tracer_warnings),
                        ("--model-option", args.model_option)):
        if value:
            raise InputError(f"{flag} needs a PyTorch model; {path} is an ONNX file (its weights are inside it)")
    if args.formats and {f.strip() for f in args.formats.split(",")} - {"onnx"}:
        raise InputError(f"--formats {args.formats}: an ONNX file gives only the onnx artifact (pt2, ts, aoti and pte "
                         "need the PyTorch model)")
    bundle = import_onnx_bundle(path, args.out, input_shape=shape, dynamic_batch=dynamic, images=args.images,
                                labels=args.labels, opset=args.opset, simplifier=args.simplifier,
                                trt_version=args.trt_version, preprocessing=preprocessing, force=args.force)
    print_summary(bundle, as_json=args.json)
    return 0


def print_summary(bundle, as_json: bool = False) -> None:
    """Artifacts and checks of a bundle: a table on a terminal, JSON with --json."""
    m = bundle.manifest
    checks = m["checks"]
    if as_json:
        print(json.dumps({"bundle": str(bundle.root), "model": m["model"], "artifacts": list(m["artifacts"]),
                          "checks_passed": sum(c["passed"] for c in checks), "checks": len(checks)}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"bundle [bold]{bundle.root}[/bold]  model {m['model']['spec']}  ({m['model']['weights']})")
    t = Table("artifact", "precision", "size", "checks")
    for name, rec in m["artifacts"].items():
        mine = [c for c in checks if c.get("artifact") == name]
        size = sum(f["bytes"] for f in rec["files"])
        t.add_row(name, rec["precision"], f"{size / 1e6:.1f} MB", f"{sum(c['passed'] for c in mine)}/{len(mine)} passed")
    console.print(t)
    ref = "ONNX Runtime FP32 on the imported file" if m["model"].get("source") == "onnx" else "PyTorch"
    worst = {}
    for c in checks:
        for o in c.get("outputs", []):
            if "max_abs" in o:
                key = c["artifact"]
                worst[key] = max(worst.get(key, 0.0), o["max_abs"])
    for k, v in worst.items():
        console.print(f"  {k}: max abs error vs {ref} {v:.2e}")
