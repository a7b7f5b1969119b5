"""``edge-se predict``: classify images with a bundle on the embedded runtime."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from edge_se.runtime.cli_args import add_runtime_arguments, load_runtime

NAME = "predict"
HELP = "run a bundle on images (top-k classes) with the embedded runtime"
ORDER = 60
EXAMPLES = """  edge-se predict bundles/se18 cat.jpg dog.png --top-k 5
  edge-se predict bundles/se18 photos/ --json
  edge-se predict bundles/se18 cat.jpg --precision int8 --threads 2"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (or a single .onnx/.engine/.ts file)")
    parser.add_argument("images", metavar="IMG|DIR", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="classes to show per image (default 5)")
    parser.add_argument("--batch", type=int, default=8, metavar="N", help="images per inference call (default 8)")
    parser.add_argument("--raw-scores", action="store_true",
                        help="show the model's raw outputs instead of softmax probabilities")
    add_runtime_arguments(parser)


def _expand(items: list[str]) -> list[Path]:
    from edge_se.preprocess import list_images

    paths: list[Path] = []
    for item in items:
        p = Path(item)
        paths.extend(list_images(p) if p.is_dir() else [p])
    return paths


def run(args: argparse.Namespace) -> int:
    from edge_se.errors import InputError
    from edge_se.runtime import top_k

    if args.top_k < 1 or args.batch < 1:
        raise InputError(f"--top-k and --batch must be positive, got {args.top_k} and {args.batch}")
    images = _expand(args.images)
    rt = load_runtime(args)
    results = []
    with warnings.catch_warnings(record=True) as caught:  # each runtime warning on one stderr line
        for start in range(0, len(images), args.batch):
            chunk = images[start:start + args.batch]
            ranked = top_k(rt.predict(chunk), args.top_k, rt.labels, softmax=not args.raw_scores)
            results += [{"image": str(p), "top_k": [e._asdict() for e in entries]} for p, entries in zip(chunk, ranked)]
    for w in caught:
        print(f"edge-se predict: warning: {w.message}", file=sys.stderr)
    info = rt.describe()
    if args.json:
        print(json.dumps({"runtime": info, "results": results}, indent=2))
        return 0
    print(f"# backend {info['backend']} ({', '.join(info['providers'])}), artifact {info['artifact']}")
    for r in results:
        print(r["image"])
        for rank, e in enumerate(r["top_k"], 1):
            label = f" {e['label']}" if e["label"] is not None else ""
            print(f"  {rank}. [{e['index']}]{label}  {e['score']:.4f}")
    return 0
