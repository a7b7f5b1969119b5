"""Peak memory, wall and CPU time of `edge-se quantize --precision int8` against the calibration count.

se_resnet50 (seeded random init; memory does not depend on the weights) at 1x3x224x224, the
default INT8 policy (``auto``) and ``keep-gates``, with 64, 256 and 512 calibration images: random
crops of scikit-learn's sample photos (calibration/sample-images.toml with ``--count``). Each run is
its own ``edge-se quantize`` process on a fresh copy of the bundle; its peak resident memory is the
kernel's ``ru_maxrss`` for that process (``os.wait4``), CPU time is user + system.

``--check-batching`` also compares the statistics of the 64-image set calibrated one sample at a
time (what the memory plan picks for se_resnet50) with 32 at a time (the old fixed batch, ~9 GB):
the largest relative difference of any range, per method.

    python benchmarks/calibration_memory.py --work /tmp/calmem --check-batching

Results are printed as a table and appended, one JSON object per run, to ``WORK/results.jsonl``
(a run already there is not repeated: delete the file to start over).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "calibration" / "sample-images.toml"


def cpu_model() -> str:
    """The CPU's model name (edge_se.runtime.cpu reads /proc/cpuinfo)."""
    from edge_se.runtime.cpu import cpu_model as model

    return model()


def _edge_se(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_se.cli", *args]


def measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` as a child process; its exit code, wall time, CPU time and peak RSS."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def _batching_check(bundle: Path, calib: Path) -> dict:
    from edge_se.calibration.dataset import load_calibration_set
    from edge_se.quantize.ranges import METHODS, collect_statistics

    cal = load_calibration_set(calib)
    one, many = (collect_statistics(bundle / "model.onnx", cal.batches(b)) for b in (1, 32))
    out = {}
    for method in METHODS:
        a, b = one.ranges(method).ranges, many.ranges(method).ranges
        out[method] = max(abs(x - y) / max(abs(y), 1e-12) for k in a for x, y in zip(a[k], b[k]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="se_resnet50")
    ap.add_argument("--counts", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--policies", nargs="+", default=["auto", "keep-gates"])
    ap.add_argument("--work", type=Path, required=True, help="folder for the bundle, the sets and the runs")
    ap.add_argument("--max-memory", default=None, help="passed to edge-se quantize")
    ap.add_argument("--check-batching", action="store_true")
    args = ap.parse_args(argv)

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    bundle = work / args.model
    if not (bundle / "manifest.json").is_file():
        subprocess.run(_edge_se("-q", "export", args.model, "--out", str(bundle)), check=True)
    for n in args.counts:
        if not (work / f"calib{n}" / "manifest.json").is_file():
            subprocess.run(_edge_se("-q", "calibrate", str(SPEC), "--out", str(work / f"calib{n}"), "--count", str(n)),
                           check=True)
    results_file = work / "results.jsonl"
    done = {}
    if results_file.is_file():
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[(r["policy"], r["count"])] = r
    for policy in args.policies:
        for n in args.counts:
            if (policy, n) in done:
                continue
            run_dir = work / f"run-{policy}-{n}"
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(bundle, run_dir)
            cmd = _edge_se("quantize", str(run_dir), "--precision", "int8", "--calib", str(work / f"calib{n}"),
                           "--policy", policy, *(["--max-memory", args.max_memory] if args.max_memory else []))
            print(f"{policy} x {n} images ...", flush=True)
            r = {"model": args.model, "policy": policy, "count": n, **measured(cmd, work / f"run-{policy}-{n}.log")}
            if r["rc"] == 0:
                rec = json.loads((run_dir / "manifest.json").read_text())["artifacts"]["model.int8.calib.cache"]
                r["batch"] = rec["calibration"]["memory"]["batch"]
                r["limit"] = rec["calibration"]["memory"]["limit"]
                r["predicted_peak_mb"] = round(rec["calibration"]["memory"]["predicted_peak_bytes"] / 2**20)
            r["cpu"] = cpu_model()
            with open(results_file, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            done[(policy, n)] = r
            shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n{args.model} 1x3x224x224, {cpu_model()}, {os.cpu_count()} cores")
    print(f"{'policy':<11} {'images':>6} {'peak RSS':>9} {'predicted':>9} {'wall':>8} {'CPU':>8}  "
          "batches (calibrate/evaluate/gptq)")
    for policy in args.policies:
        for n in args.counts:
            if (policy, n) not in done:
                continue
            r = done[(policy, n)]
            b = r.get("batch") or {}
            pred = f"{r['predicted_peak_mb'] / 1024:.2f} GB" if "predicted_peak_mb" in r else "-"
            print(f"{policy:<11} {n:>6} {r['peak_rss_mb'] / 1024:>7.2f} GB {pred:>9} {r['wall_s']:>7.0f}s {r['cpu_s']:>7.0f}s  "
                  f"{b.get('calibrate', '-')}/{b.get('evaluate', '-')}/{b.get('gptq', '-')}"
                  + ("" if r["rc"] == 0 else f"  (exit {r['rc']}, see run-{policy}-{n}.log)"))
    if args.check_batching:
        diffs = _batching_check(bundle, work / f"calib{min(args.counts)}")
        print(f"ranges, batch 1 vs batch 32 on {min(args.counts)} images, largest relative difference: "
              + ", ".join(f"{m} {d:.1e}" for m, d in diffs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
