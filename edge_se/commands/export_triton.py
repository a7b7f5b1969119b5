"""``edge-se export-triton BUNDLE --out REPO``: a Triton model repository from a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export-triton"
HELP = "write a Triton Inference Server model repository (config.pbtxt + model file) from a bundle"
DESCRIPTION = (
    "Write REPO/<name>/config.pbtxt and REPO/<name>/1/<file> for NVIDIA Triton Inference Server from one "
    "artifact of a bundle: names, dtypes, dims and the batch range from the manifest, dynamic batching, "
    "instance groups, warm-up and the label file. The config is built with Triton's own ModelConfig schema "
    "(tritonclient) and parsed back before it is written; files are copied sha256-checked. --serve python "
    "serves the artifact with edge_se.runtime in Triton's Python backend (see docs/serving.md)."
)
EXAMPLES = (
    "  edge-se export-triton bundles/se18 --out triton_repo\n"
    "  edge-se export-triton bundles/se18 --out triton_repo --artifact model.int8.cpu.onnx --max-batch 16 --instances 2\n"
    "  edge-se export-triton bundles/se18 --out triton_repo --serve python --force\n"
    "  edge-se export-triton bundles/se18 --out triton_repo --ensemble --force   (raw images in)"
)
ORDER = 55


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge_se.serving.triton import DEFAULT_MAX_BATCH, SERVE_KINDS, WARMUP_KINDS

    p.add_argument("bundle", type=Path, help="bundle folder")
    p.add_argument("--out", type=Path, required=True, help="model repository folder to write (new, empty, or "
                   "an edge-se repository with --force)")
    p.add_argument("--name", help="model name in the repository (default: the bundle's model spec)")
    p.add_argument("--artifact", default="model.onnx", help="the bundle artifact to serve (default: model.onnx)")
    p.add_argument("--serve", choices=SERVE_KINDS, default="native",
                   help="native: Triton's backend for the file (onnxruntime, pytorch_libtorch); python: "
                        "edge_se.runtime in Triton's Python backend (default: native)")
    p.add_argument("--runtime-backend", default="onnxruntime",
                   help="with --serve python: the edge_se.runtime backend (default: onnxruntime)")
    p.add_argument("--max-batch", type=int, help=f"max_batch_size for a dynamic-batch artifact (default: "
                   f"{DEFAULT_MAX_BATCH}; static-batch artifacts get 0)")
    p.add_argument("--instances", type=int, default=1, help="model instances (instance_group count; default 1)")
    p.add_argument("--kind", choices=("cpu", "gpu"), default="cpu", help="instance kind (default: cpu)")
    p.add_argument("--max-queue-delay-us", type=int, default=100,
                   help="dynamic batching: the longest a request waits for others, microseconds (default 100)")
    p.add_argument("--warmup", choices=WARMUP_KINDS, default="zero",
                   help="model_warmup: one batch-1 request of zero or random data, or none (default: zero)")
    p.add_argument("--compute-capability", metavar="X.Y",
                   help="a TensorRT engine's sidecar must say it was built for this GPU architecture")
    p.add_argument("--ensemble", action="store_true", help="also write <name>_preprocess (Python backend: encoded "
                   "images -> the bundle's preprocessing) and <name>_ensemble, which clients send raw images to")
    p.add_argument("--force", action="store_true", help="replace --out if it is an edge-se-written repository")


def run(args: argparse.Namespace) -> int:
    from edge_se.progress import info
    from edge_se.serving.triton import TritonOptions, export_triton

    opts = TritonOptions(name=args.name, artifact=args.artifact, serve=args.serve, max_batch=args.max_batch,
                         instances=args.instances, kind=args.kind, max_queue_delay_us=args.max_queue_delay_us,
                         warmup=args.warmup, runtime_backend=args.runtime_backend,
                         compute_capability=args.compute_capability, ensemble=args.ensemble)
    repo = export_triton(args.bundle, args.out, opts, force=args.force)
    batch = f"max_batch_size {repo.max_batch_size}" if repo.max_batch_size else "static batch (max_batch_size 0)"
    ensemble = f"; clients send encoded images to {repo.ensemble_name!r}" if repo.ensemble_name else ""
    info(f"wrote Triton model {repo.name!r} ({batch}) to {repo.model_dir}{ensemble}; serve with: "
         f"tritonserver --model-repository {repo.root}")
    if args.json:
        from edge_se.commands._output import emit_json

        emit_json({"command": "export-triton", "ok": True, "bundle": str(args.bundle), "repository": str(repo.root),
                   "model": repo.name, "model_dir": str(repo.model_dir), "max_batch_size": repo.max_batch_size,
                   "ensemble": repo.ensemble_name})
    return 0
