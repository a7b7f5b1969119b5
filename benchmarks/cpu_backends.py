"""CPU backends side by side: ONNX Runtime and OpenVINO at FP32, BF16 and INT8 (each INT8 file).

For each model (default se_resnet50 and cbam_resnet50 at 1x3x224x224, seeded init) the script
exports a bundle, quantizes it to INT8 with the real stage (64 crops of the sample photos; policy
``all`` by default, ``--policy auto`` for the stage's default, which takes ~20 min per model on 2
cores), saves a measured backend choice with ``edge-se bench --backends all --save-choice``
(batch 1), then, at each batch size x thread count, times every row interleaved (rounds of
``--calls`` calls per row, so drift of a shared machine hits every row alike) and reports the
median latency, the ratio to ONNX Runtime FP32, the relative error against PyTorch FP32 on 16
real crops (``max |out - ref| / max |ref|``) and top-1 agreement with it; each row is also judged
with its precision's tolerance against PyTorch on :data:`JUDGE_CROPS` crops (``--judge-only`` does only that). ``auto`` marks the row
``Runtime.load(bundle, precision=p)`` picks (with the saved choice). Then the cold start of each
backend (a fresh process: import, load, one inference; no torch): wall time and peak RSS.

    python benchmarks/cpu_backends.py --work /tmp/cpub

Results are printed and written to ``WORK/results.json``; bundles are kept in WORK and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "calibration" / "sample-images.toml"
#: (backend, precision, artifact) rows; bf16 is OpenVINO's BF16 on the FP32 file
ROWS = [("onnxruntime", "fp32", "model.onnx"), ("onnxruntime", "int8", "model.int8.cpu.onnx"),
        ("onnxruntime", "int8", "model.int8.trt.onnx"), ("openvino", "fp32", "model.onnx"),
        ("openvino", "bf16", "model.onnx"), ("openvino", "int8", "model.int8.cpu.onnx"),
        ("openvino", "int8", "model.int8.trt.onnx")]
#: crops each row is judged on: 128 leave ~30 decisive samples on these seeded-init 224 nets, where
#: two flips already read as "significantly below 99 %"; 512 (a superset) leave ~120
JUDGE_CROPS = 512
JUDGE_BATCH = 32


def _edge_se(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_se.cli", *args]


def prepare(work: Path, model: str, policy: str, count: int, choose: bool = True) -> Path:
    """Export, calibrate, quantize (each skipped when already done) and save the backend choice."""
    bundle = work / model
    if not (bundle / "manifest.json").is_file():
        subprocess.run(_edge_se("-q", "export", model, "--input-shape", "1x3x224x224", "--out", str(bundle)), check=True)
    calib = work / f"calib{count}"
    if not (calib / "manifest.json").is_file():
        subprocess.run(_edge_se("-q", "calibrate", str(SPEC), "--out", str(calib), "--count", str(count)), check=True)
    if "model.int8.trt.onnx" not in json.loads((bundle / "manifest.json").read_text())["artifacts"]:
        t0 = time.perf_counter()
        subprocess.run(_edge_se("-q", "quantize", str(bundle), "--precision", "int8", "--calib", str(calib),
                                "--policy", policy), check=True)
        print(f"{model}: quantized (policy {policy}) in {time.perf_counter() - t0:.0f} s", flush=True)
    if choose:
        subprocess.run(_edge_se("bench", str(bundle), "--backends", "onnxruntime,openvino", "--duration", "3",
                                "--save-choice"), check=True, stdout=subprocess.DEVNULL)
    return bundle


def reference(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """16 real crops in the bundle's preprocessing and PyTorch FP32's outputs on them."""
    import torch

    from edge_se.bundle import Bundle
    from edge_se.preprocess import PreprocessSpec
    from edge_se.reference.inputs import sample_images
    from edge_se.reference.rebuild import reference_module

    b = Bundle.open(bundle)
    x = sample_images(16, PreprocessSpec.from_dict(b.section("preprocessing")), seed=11)
    with torch.inference_mode():
        return x, reference_module(b)(torch.from_numpy(x)).numpy()


def judged(bundle: Path, n: int = JUDGE_CROPS) -> list[dict]:
    """Each row's tolerance check against PyTorch FP32 on ``n`` real crops (the precision's
    tolerance from edge_se/reference/tolerances.py; bf16 is held to FP16's)."""
    import torch

    from edge_se.bundle import Bundle
    from edge_se.preprocess import PreprocessSpec
    from edge_se.runtime import Runtime
    from edge_se.reference.inputs import sample_images
    from edge_se.reference.numerics import compare_outputs
    from edge_se.reference.rebuild import reference_module

    b = Bundle.open(bundle)
    x = sample_images(n, PreprocessSpec.from_dict(b.section("preprocessing")), seed=11)
    module = reference_module(b)
    with torch.inference_mode():
        ref = np.concatenate([module(torch.from_numpy(x[i:i + JUDGE_BATCH])).numpy() for i in range(0, n, JUDGE_BATCH)])
    out = []
    for backend, precision, artifact in ROWS:
        rt = Runtime.load(bundle, backend, artifact=artifact, precision="bf16" if precision == "bf16" else None,
                          warmup=0)
        got = np.concatenate([rt.predict(x[i:i + JUDGE_BATCH]) for i in range(0, n, JUDGE_BATCH)])
        result = compare_outputs([ref], [got], precision)
        o = result["outputs"][0]
        out.append({"backend": backend, "precision": precision, "artifact": artifact, "passed": result["passed"],
                    "sqnr_db": round(o["sqnr_db"], 1), "top1_agreement": o.get("top1_agreement"),
                    "decisive": o.get("decisive"), "reason": o.get("reason") or ""})
        rt.close()
    return out


def timed_rows(bundle: Path, batch: int, threads: int, calls: int, rounds: int, x: np.ndarray, ref: np.ndarray) -> list[dict]:
    """Every row at one batch x threads, interleaved; median latency, errors against PyTorch."""
    from edge_se.runtime import Runtime

    rts = [Runtime.load(bundle, b, artifact=a, precision="bf16" if p == "bf16" else None, threads=threads)
           for b, p, a in ROWS]
    feeds = np.ascontiguousarray(np.concatenate([x] * (batch // len(x) + 1))[:batch])
    lat: list[list[float]] = [[] for _ in rts]
    for rt in rts:
        rt.predict(feeds)
    for _ in range(rounds):
        for i, rt in enumerate(rts):
            for _ in range(calls):
                t0 = time.perf_counter()
                rt.predict(feeds)
                lat[i].append(time.perf_counter() - t0)
    out = []
    for (backend, precision, artifact), rt, ms in zip(ROWS, rts, lat):
        got = rt.predict(x)
        out.append({"backend": backend, "precision": precision, "artifact": artifact, "batch": batch,
                    "threads": threads, "p50_ms": round(1e3 * float(np.median(ms)), 2), "calls": len(ms),
                    "rel_error": float(np.abs(got - ref).max() / np.abs(ref).max()),
                    "top1_agreement": float(np.mean(got.argmax(1) == ref.argmax(1)))})
        rt.close()
    return out


def auto_picks(bundle: Path) -> dict[str, tuple[str, str]]:
    """What ``Runtime.load(bundle, precision=p)`` runs, per precision (the saved choice applies)."""
    from edge_se.runtime import Runtime

    picks = {}
    for p in ("fp32", "bf16", "int8"):
        d = Runtime.load(bundle, precision=p, warmup=0).describe()
        picks[p] = (d["backend"], d["artifact"])
    return picks


COLD = """
import sys, time
t0 = time.perf_counter()
import numpy as np
from edge_se.runtime import Runtime
rt = Runtime.load(sys.argv[1], sys.argv[2], warmup=0, cache_dir=sys.argv[3] if len(sys.argv) > 3 else None)
rt.predict(np.zeros((1, 3, 224, 224), np.float32))
wall = time.perf_counter() - t0
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))  # kB, this process only
print(wall, hwm, int(any(m.split('.')[0] == 'torch' for m in sys.modules)))
"""


def cold_start(bundle: Path, work: Path) -> list[dict]:
    """A fresh process per backend: import + load + one inference; wall and peak RSS (median of 3)."""
    out = []
    cases = [("onnxruntime", None), ("openvino", None), ("onnxruntime", work / "ort-cache"),
             ("openvino", work / "ov-cache")]
    for backend, cache in cases:
        runs = []
        for _ in range(3 if cache is None else 4):  # with a cache the first run fills it
            args = [sys.executable, "-c", COLD, str(bundle), backend] + ([str(cache)] if cache else [])
            wall, rss, torch_loaded = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
            runs.append((float(wall), int(rss) / 1024, int(torch_loaded)))
        runs = runs[1:] if cache is not None else runs
        out.append({"backend": backend, "cache": cache is not None, "wall_s": round(float(np.median([r[0] for r in runs])), 2),
                    "peak_rss_mb": round(float(np.median([r[1] for r in runs]))), "torch_imported": any(r[2] for r in runs)})
    return out


def main(argv: list[str] | None = None) -> int:
    from edge_se.runtime.cpu import cpu_model, fingerprint

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--models", nargs="+", default=["se_resnet50", "cbam_resnet50"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--policy", default="all", help="INT8 precision policy for the quantize stage (default all)")
    ap.add_argument("--count", type=int, default=64, help="calibration images")
    ap.add_argument("--calls", type=int, default=3, help="calls per row per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prepare-only", action="store_true", help="export and quantize the bundles, time nothing")
    ap.add_argument("--judge-only", action="store_true",
                    help=f"only each row's tolerance check on {JUDGE_CROPS} crops (no timing: safe beside other work)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.judge_only:
        for model in args.models:
            _print_tolerance(model, judged(prepare(args.work, model, args.policy, args.count, choose=False)))
        return 0
    if args.prepare_only:
        for model in args.models:
            prepare(args.work, model, args.policy, args.count, choose=False)
        return 0
    report = {"machine": fingerprint(), "cores": os.cpu_count(), "policy": args.policy, "models": {}}
    for model in args.models:
        bundle = prepare(args.work, model, args.policy, args.count)
        x, ref = reference(bundle)
        picks = auto_picks(bundle)
        rows = []
        for threads in args.threads:
            for batch in args.batches:
                print(f"{model}: batch {batch}, {threads} thread(s) ...", flush=True)
                rows += timed_rows(bundle, batch, threads, args.calls, args.rounds, x, ref)
        report["models"][model] = {"auto": picks, "rows": rows, "tolerance": judged(bundle)}
        _print(model, rows, picks)
        _print_tolerance(model, report["models"][model]["tolerance"])
    model = args.models[0]
    report["cold_start"] = cold_start(args.work / model, args.work)
    print(f"\ncold start, {model} FP32 (fresh process: import + load + 1 inference, median of 3):")
    for c in report["cold_start"]:
        print(f"  {c['backend']:<12} {'cache' if c['cache'] else 'no cache':<9} {c['wall_s']:>6.2f} s  "
              f"{c['peak_rss_mb']:>5.0f} MiB  torch imported: {c['torch_imported']}")
    (args.work / "results.json").write_text(json.dumps(report, indent=2))
    print(f"\n{cpu_model()}, {os.cpu_count()} cores; {args.work / 'results.json'}")
    return 0


def _print_tolerance(model: str, rows: list[dict]) -> None:
    print(f"\n{model}: tolerance against PyTorch FP32 on {JUDGE_CROPS} sample crops")
    for r in rows:
        print(f"  {r['backend']:<12} {r['precision']:<5} {r['artifact']:<20} {'pass' if r['passed'] else 'FAIL'}  "
              f"SQNR {r['sqnr_db']:5.1f} dB  top-1 {r['top1_agreement']:.3f} of {r['decisive']} decisive  {r['reason']}")


def _print(model: str, rows: list[dict], picks: dict) -> None:
    print(f"\n{model} 1x3x224x224 (median ms; x = speed-up over ONNX Runtime FP32 at the same batch/threads)")
    print(f"{'backend':<12} {'prec':<5} {'artifact':<20} {'b':>2} {'thr':>3} {'p50 ms':>8} {'x':>6} "
          f"{'rel err':>8} {'top-1':>6}  default / fastest")
    for key in sorted({(r["batch"], r["threads"]) for r in rows}, key=lambda k: (k[1], k[0])):
        group = [r for r in rows if (r["batch"], r["threads"]) == key]
        base = next(r["p50_ms"] for r in group if r["backend"] == "onnxruntime" and r["precision"] == "fp32")
        for r in group:
            same = [g["p50_ms"] for g in group if g["precision"] == r["precision"]]
            chosen = picks.get(r["precision"]) == (r["backend"], r["artifact"])
            mark = f"auto: {min(same) / r['p50_ms']:.2f} of fastest" if chosen else ""
            print(f"{r['backend']:<12} {r['precision']:<5} {r['artifact']:<20} {r['batch']:>2} {r['threads']:>3} "
                  f"{r['p50_ms']:>8.2f} {base / r['p50_ms']:>5.2f}x {r['rel_error']:>8.1e} {100 * r['top1_agreement']:>5.1f}%  {mark}")


if __name__ == "__main__":
    raise SystemExit(main())
