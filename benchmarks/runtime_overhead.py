#!/usr/bin/env python3
"""Runtime overhead: edge-se Runtime vs a raw onnxruntime.InferenceSession vs PyTorch eager.

se_resnet50 (zoo, seeded random weights) at 1x3x224x224, batch 1 and 8, FP32 and the CPU-fast
INT8 (the bundle's ``model.int8.cpu.onnx`` when it has one, else this script quantizes with
onnxruntime.quantization.quantize_static: QDQ, U8 activations, S8 per-channel weights, and says
so). The Runtime and the raw session get the same options (intra-op threads, graph optimization
all, sequential); PyTorch eager runs under torch.inference_mode with the same thread count.
Runtime and raw ORT are timed in alternating blocks; figures are medians of per-call latency.

    python benchmarks/runtime_overhead.py --threads 2 --iters 30
    python benchmarks/runtime_overhead.py --iters 3 --warmup 1 --batches 1 --precisions fp32   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WORK = Path(os.environ.get("EDGE_SE_BENCH_DIR", "/tmp/edge_se_bench"))
MODEL, SHAPE = "se_resnet50", (1, 3, 224, 224)


def ensure_bundle(work: Path = DEFAULT_WORK, model: str = MODEL, shape=SHAPE) -> Path:
    """The ``model`` bundle under ``work``, made once by the export pipeline in a child process
    (so that torch and the exporter never load into the process being measured)."""
    root = work / f"{model}_{'x'.join(map(str, shape))}"
    if (root / "manifest.json").is_file():
        return root
    print(f"# exporting {model} {shape} to {root} (once) ...", file=sys.stderr)
    code = ("import sys; from edge_se import progress; progress.set_quiet(True)\n"
            "from edge_se.export.pipeline import export_bundle\n"
            "export_bundle(sys.argv[1], tuple(int(v) for v in sys.argv[2].split('x')), sys.argv[3], force=True)\n")
    subprocess.run([sys.executable, "-c", code, model, "x".join(map(str, shape)), str(root)], check=True)
    return root


def int8_model(bundle: Path, work: Path) -> tuple[Path, str]:
    """The CPU-fast INT8 file and where it came from."""
    from edge_se.bundle import Bundle

    b = Bundle.open(bundle)
    if "model.int8.cpu.onnx" in b.artifacts:
        return b.verify("model.int8.cpu.onnx"), "bundle artifact model.int8.cpu.onnx (edge-se quantize)"
    out = work / f"{bundle.name}.int8.cpu.onnx"
    how = ("quantize_static here: QDQ, U8 activations, S8 per-channel weights, MinMax calibration on "
           "16 crops/flips of scikit-learn's sample images")
    if out.is_file():
        return out, how
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from sklearn.datasets import load_sample_images

    from edge_se.preprocess import PreprocessSpec, preprocess_image

    spec = PreprocessSpec.from_dict(b.manifest["preprocessing"])
    images = load_sample_images().images
    samples = []
    for img in images:
        h, w = img.shape[:2]
        for i in range(4):
            crop = img[(i * h) // 8: h - ((3 - i) * h) // 8, (i * w) // 8: w - ((3 - i) * w) // 8]
            samples += [preprocess_image(crop, spec), preprocess_image(crop[:, ::-1].copy(), spec)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": s[None]} for s in samples])

        def get_next(self):
            return next(self.it, None)

    pre = work / f"{bundle.name}.pre.onnx"
    quant_pre_process(str(b.verify("model.onnx")), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    pre.unlink()
    return out, how


def time_calls(fn, iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(fns: dict, iters: int, warmup: int, block: int = 5) -> dict[str, float]:
    """Median seconds per call of each fn, timed in alternating blocks of ``block`` calls."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        for _ in range(warmup):
            f()
    done = 0
    while done < iters:
        n = min(block, iters - done)
        keys = list(fns) if (done // block) % 2 == 0 else list(reversed(fns))
        for k in keys:
            times[k] += time_calls(fns[k], n)
        done += n
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="an se_resnet50 bundle (default: export one under --work)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30, help="timed calls per runner and case (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls per runner and case (default 3)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort

    from edge_se.runtime import Runtime
    from edge_se.runtime.backends.onnxruntime import OrtOptions, session_options

    args.work.mkdir(parents=True, exist_ok=True)
    bundle = args.bundle or ensure_bundle(args.work)
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precisions.split(",")
    opts = OrtOptions(intra_op_threads=args.threads)
    files = {"fp32": (bundle / "model.onnx", "bundle artifact model.onnx")}
    if "int8" in precisions:
        files["int8"] = int8_model(bundle, args.work)

    rows = []
    eager_ms: dict[int, float] = {}
    for precision in precisions:
        path, origin = files[precision]
        rt = (Runtime.load(bundle, threads=args.threads, warmup=0) if precision == "fp32"
              else Runtime.load(bundle, precision="int8", threads=args.threads, warmup=0) if "bundle" in origin
              else Runtime.load(path, threads=args.threads, warmup=0))
        raw = ort.InferenceSession(str(path), session_options(opts), providers=["CPUExecutionProvider"])
        name = raw.get_inputs()[0].name
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, *SHAPE[1:])).astype(np.float32)
            med = interleaved({"runtime": lambda: rt.predict(x), "raw_ort": lambda: raw.run(None, {name: x})},
                              args.iters, args.warmup)
            rows.append({"precision": precision, "batch": batch, "runtime_ms": med["runtime"] * 1e3,
                         "raw_ort_ms": med["raw_ort"] * 1e3, "artifact": origin})

    import torch

    from edge_se.models.loading import resolve_model

    torch.set_num_threads(args.threads)
    net = resolve_model(MODEL, seed=0).module.eval()
    for batch in batches:
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, *SHAPE[1:])).astype(np.float32))
        with torch.inference_mode():
            time_calls(lambda: net(x), args.warmup)
            eager_ms[batch] = statistics.median(time_calls(lambda: net(x), args.iters)) * 1e3

    print(f"# runtime overhead, {MODEL} {'x'.join(map(str, SHAPE[1:]))}, {args.threads} threads, median of "
          f"{args.iters} calls; {platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}, "
          f"torch {torch.__version__}")
    print(f"{'prec':<5} {'batch':>5} {'runtime ms':>11} {'raw ORT ms':>11} {'eager ms':>9} "
          f"{'rt/raw':>7} {'eager/rt':>9}")
    for r in rows:
        r["eager_fp32_ms"] = eager_ms[r["batch"]]
        r["runtime_over_raw"] = r["runtime_ms"] / r["raw_ort_ms"]
        r["speedup_vs_eager"] = r["eager_fp32_ms"] / r["runtime_ms"]
        print(f"{r['precision']:<5} {r['batch']:>5} {r['runtime_ms']:>11.2f} {r['raw_ort_ms']:>11.2f} "
              f"{r['eager_fp32_ms']:>9.2f} {r['runtime_over_raw']:>7.3f} {r['speedup_vs_eager']:>9.2f}")
    for p in precisions:
        print(f"# {p}: {files[p][1]}")
    print("# targets: rt/raw <= 1.03; eager/rt >= 1.8 (eager is FP32 PyTorch for both precisions)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
