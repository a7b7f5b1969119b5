"""``edge-se inspect``: ops, TensorRT support, inputs/outputs and size of a bundle or ONNX file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_se.commands._common import trt_version_arg

NAME = "inspect"
ORDER = 30
HELP = "show ops, TensorRT op support, I/O and size of a bundle or .onnx file"
EXAMPLES = """  edge-se inspect bundles/se50
  edge-se inspect model.onnx --trt-version 8.6
  edge-se inspect bundles/se50 --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="bundle folder or .onnx file")
    p.add_argument("--artifact", default=None, help="which ONNX artifact of a bundle (default model.onnx)")
    p.add_argument("--trt-version", default="10.1", type=trt_version_arg,
                   help="TensorRT version to check op support for, dotted (8.5, 8.6, 10.3, ...; default 10.1)")


def inspect_onnx(path: Path, trt_version: str) -> dict:
    """The facts ``edge-se inspect`` prints, as a dict."""
    import onnx

    from edge_se.errors import InputError
    from edge_se.export.checks import io_specs
    from edge_se.export.trt_ops import count_ops, op_support

    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise InputError(f"{path} is not a readable ONNX model: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
    inputs, outputs = io_specs(model)
    support = op_support(count_ops(model), trt_version)
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    params = sum(int(__import__("numpy").prod(t.dims)) for t in model.graph.initializer)
    return {
        "file": str(path),
        "bytes": size,
        "parameters": params,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": inputs,
        "outputs": outputs,
        "nodes": len(model.graph.node),
        "tensorrt": {k: v for k, v in support.items() if k != "ops"},
        "ops": [{"op": r.op, "count": r.count, "tensorrt": r.supported, "restrictions": r.restrictions} for r in support["ops"]],
    }


def run(args: argparse.Namespace) -> int:
    from edge_se.bundle import MANIFEST_NAME, Bundle

    target = Path(args.target)
    bundle = None
    if target.is_dir() or (target.suffix != ".onnx" and not target.exists()):
        bundle = Bundle.open(target)
        path = bundle.path(args.artifact or "model.onnx")
    else:
        path = target
    info = inspect_onnx(path, args.trt_version)
    if bundle is not None:
        info["bundle"] = {"model": bundle.manifest.get("model"), "artifacts": {
            k: {"precision": v["precision"], "format": v["format"], "backend": v.get("backend"),
                "batch_range": v.get("batch_range"), "bytes": sum(f["bytes"] for f in v["files"])}
            for k, v in bundle.artifacts.items()},
            "format_failures": {k: v.get("reason") for k, v in (bundle.manifest.get("format_failures") or {}).items()},
            "checks": {"passed": sum(c["passed"] for c in bundle.manifest["checks"]), "total": len(bundle.manifest["checks"])},
            "manifest": str(bundle.root / MANIFEST_NAME)}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    c = Console()
    c.print(f"[bold]{info['file']}[/bold]  {info['bytes'] / 1e6:.1f} MB, {info['parameters'] / 1e6:.2f} M params, "
            f"{info['nodes']} nodes, opset {info['opset']}")
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            c.print(f"  {kind[:-1]:6} {s['name']}: {s['dtype']} {s['shape']}")
    trt = info["tensorrt"]
    c.print(f"TensorRT {trt['trt_version']} ONNX-parser support (NVIDIA matrix {trt['table']}, {trt['provenance']})"
            + (f" - {trt['note']}" if trt["note"] else ""))
    t = Table("op", "count", "TensorRT", "restrictions")
    for r in info["ops"]:
        mark = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "[yellow]not listed[/yellow]"}[r["tensorrt"]]
        t.add_row(r["op"], str(r["count"]), mark, r["restrictions"][:80])
    c.print(t)
    if bundle is not None:
        b = info["bundle"]
        t = Table("artifact", "format", "precision", "runs on", "batch", "size")
        for name, a in b["artifacts"].items():
            batch = a["batch_range"]
            t.add_row(name, str(a["format"]), str(a["precision"]), str(a["backend"] or ""),
                      f"{batch[0]}..{batch[1]}" if isinstance(batch, list) and len(batch) == 2 else "", f"{a['bytes'] / 1e6:.1f} MB")
        c.print(t)
        for fmt, reason in b["format_failures"].items():
            c.print(f"  [yellow]not in the bundle[/yellow]: {fmt}: {reason}", soft_wrap=True)
        c.print(f"bundle: {len(b['artifacts'])} artifacts; checks {b['checks']['passed']}/{b['checks']['total']} passed")
    return 0
