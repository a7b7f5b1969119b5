"""Command-line options shared by ``edge-se predict`` and ``edge-se bench`` (runtime loading)."""

from __future__ import annotations

import argparse
from typing import Sequence

BACKEND_CHOICES = ("auto", "onnxruntime", "openvino", "tensorrt", "torchscript", "pt2", "aoti", "executorch")


def check_choices(values: Sequence[str], allowed: Sequence[str], flag: str) -> list[str]:
    """``values`` when each is one of ``allowed`` (and there is one at least), else a one-line InputError."""
    from edge_se.errors import InputError

    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise InputError(f"{flag}: expected a comma-separated subset of {','.join(allowed)}, "
                         f"found {','.join(values) or 'nothing'}")
    return list(values)


def split_csv(text: str | None) -> list[str]:
    """The non-empty comma-separated items of ``text``."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --precision, --artifact, --threads, ORT options, --no-verify, --warmup, --strict."""
    g = parser.add_argument_group("runtime")
    g.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="auto: the bundle's saved choice for this CPU ('edge-se bench --save-choice'), else a "
                        "TensorRT engine when TensorRT and a GPU are present, else ONNX Runtime")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                   help="which of the bundle's artifacts to run (default fp32; engines: the fastest); bf16: "
                        "the FP32 file in OpenVINO's BF16 (CPUs with AVX512_BF16 or AMX)")
    g.add_argument("--artifact", metavar="NAME", help="run this manifest artifact (e.g. model.int8.cpu.onnx)")
    g.add_argument("--threads", type=int, metavar="N", help="intra-op threads (ONNX Runtime, OpenVINO, torch)")
    g.add_argument("--inter-op-threads", type=int, metavar="N", help="ONNX Runtime inter-op threads")
    g.add_argument("--graph-optimization", default="all", choices=("disable", "basic", "extended", "all"),
                   help="ONNX Runtime graph optimization level (default all)")
    g.add_argument("--execution-mode", default="sequential", choices=("sequential", "parallel"),
                   help="ONNX Runtime execution mode (default sequential)")
    g.add_argument("--provider", action="append", dest="providers", metavar="EP",
                   help="ONNX Runtime execution provider, in priority order (repeatable)")
    g.add_argument("--warmup", type=int, default=1, metavar="N", help="warm-up runs on load (default 1)")
    g.add_argument("--preprocessing", metavar="FILE",
                   help="preprocessing spec (JSON or TOML with PreprocessSpec keys): needed to feed images "
                        "to a single model file; overrides a bundle's")
    g.add_argument("--labels", metavar="FILE", help="class names, one per line, as 'edge-se export --labels' takes (overrides a bundle's)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="keep ONNX Runtime-optimized (or OpenVINO-compiled) models here for faster later loads "
                        "(a trusted folder)")
    g.add_argument("--no-verify", action="store_true",
                   help="skip the sha256 check of the artifact (only for files you trust)")
    g.add_argument("--strict", action="store_true",
                   help="refuse inputs holding NaN/Inf values (default: warn once per input)")


def read_spec_file(path: str) -> dict:
    """A preprocessing table from a JSON or TOML file (a TOML file may nest it under [preprocessing])."""
    import json
    from pathlib import Path

    from edge_se.errors import InputError

    file = Path(path)
    if not file.is_file():
        raise InputError(f"preprocessing file {file} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"preprocessing file {file} is not UTF-8 text (byte {e.start}); expected JSON or TOML") from None
    try:
        if file.suffix.lower() == ".toml":
            try:
                import tomllib  # novermin - tomli below on Python < 3.11
            except ModuleNotFoundError:  # Python 3.8-3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{file}: cannot parse ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("preprocessing"), dict):
        data = data["preprocessing"]
    return data


def load_runtime(args: argparse.Namespace):
    """Build a Runtime from parsed arguments; its notes (which file, a saved choice followed or
    ignored) go to stderr, once each."""
    from rich.markup import escape

    from edge_se import progress
    from edge_se.runtime import Runtime

    rt = Runtime.load(
        args.bundle, args.backend, precision=args.precision, artifact=args.artifact, verify=not args.no_verify,
        warmup=args.warmup, threads=args.threads, inter_op_threads=args.inter_op_threads,
        graph_optimization=args.graph_optimization, execution_mode=args.execution_mode,
        providers=args.providers, cache_dir=args.cache_dir, labels=args.labels, strict=args.strict,
        preprocessing=read_spec_file(args.preprocessing) if args.preprocessing else None,
    )
    for note in rt.source.notes:
        progress.info(f"note: {escape(note)}")
    return rt
