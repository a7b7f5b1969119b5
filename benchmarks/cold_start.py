#!/usr/bin/env python3
"""Cold start: wall time and peak RSS of a fresh ``python -c "load bundle; one inference"``.

Each run is a new interpreter that imports edge_se.runtime, loads the bundle (sha256 check,
ONNX Runtime session, the default warm-up run) and classifies one 224x224 array; it fails if
torch was imported. Wall time is measured around the child process; peak RSS is the child's
``ru_maxrss`` from ``os.wait4``. Targets (se_resnet50 FP32): under 1 s and under 300 MB.

    python benchmarks/cold_start.py --runs 5
    python benchmarks/cold_start.py --runs 5 --cache-dir /tmp/edge_se_bench/ort-cache
    python benchmarks/cold_start.py --bundle /tmp/edge_se_bench/se_resnet50_1x3x224x224 --warmup 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys
import numpy as np
from edge_se.runtime import Runtime
rt = Runtime.load(sys.argv[1], warmup=int(sys.argv[2]), threads=int(sys.argv[3]) or None,
                  cache_dir=sys.argv[4] or None)
x = np.zeros((1, *rt.inputs[0].shape[1:]), rt.inputs[0].dtype)
rt.classify(x, k=1)
if "torch" in sys.modules:
    raise SystemExit("torch was imported")
"""


def run_once(bundle: Path, warmup: int, threads: int, cache_dir: str = "") -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one cold start."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(bundle), str(warmup), str(threads), cache_dir])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"cold-start child failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="bundle folder (default: the se_resnet50 bundle of runtime_overhead.py)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="Runtime.load warm-up runs (default 1, as shipped)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's default)")
    ap.add_argument("--cache-dir", default="",
                    help="Runtime.load cache_dir (optimized-model cache); one untimed run fills it first")
    args = ap.parse_args()

    bundle = args.bundle
    if bundle is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from runtime_overhead import ensure_bundle

        bundle = ensure_bundle()
    if args.cache_dir:
        run_once(bundle, args.warmup, args.threads, args.cache_dir)
    results = [run_once(bundle, args.warmup, args.threads, args.cache_dir) for _ in range(args.runs)]
    walls, rss = [r[0] for r in results], [r[1] for r in results]
    cache = f", optimized-model cache {args.cache_dir} (filled)" if args.cache_dir else ", no cache"
    print(f"# cold start of {bundle.name}: python -c 'load bundle (warm-up {args.warmup}); one inference'{cache}, "
          f"{args.runs} runs, {os.cpu_count()} cores")
    print(f"wall s    median {statistics.median(walls):.3f}   min {min(walls):.3f}   max {max(walls):.3f}")
    print(f"peak RSS  median {statistics.median(rss):.1f} MiB   max {max(rss):.1f} MiB")
    print("# targets: wall < 1 s, peak RSS < 300 MB (torch not imported: checked in the child)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
