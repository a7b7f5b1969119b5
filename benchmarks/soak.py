#!/usr/bin/env python3
"""Soak: many threads share one Runtime; outputs must equal single-threaded ones, RSS must stay flat.

``--threads`` threads each make ``--per-thread`` predictions (batch 1) on one shared Runtime,
cycling through ``--inputs`` distinct seeded inputs; every output is compared bit for bit with
the single-threaded output for the same input. RSS (/proc/self/status VmRSS) is read after a
warm phase (every thread made ``--warm`` predictions) and at the end; growth must stay under 5%.

    python benchmarks/soak.py --threads 8 --per-thread 2000          # se_resnet18 at 1x3x112x112
    python benchmarks/soak.py --bundle /tmp/edge_se_bench/se_resnet50_1x3x224x224   # slower
    python benchmarks/soak.py --threads 8 --per-thread 20 --warm 5        # smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="bundle folder (default: export --model at --input-shape once)")
    ap.add_argument("--model", default="se_resnet18", help="zoo model when no --bundle (default se_resnet18)")
    ap.add_argument("--input-shape", default="1x3x112x112", help="its input shape (default 1x3x112x112)")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--per-thread", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=50, help="predictions per thread before the RSS baseline")
    ap.add_argument("--inputs", type=int, default=16, help="distinct inputs cycled through")
    ap.add_argument("--intra-threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    args = ap.parse_args()

    import numpy as np

    from edge_se.runtime import Runtime

    bundle = args.bundle
    if bundle is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from runtime_overhead import ensure_bundle

        bundle = ensure_bundle(model=args.model, shape=tuple(int(v) for v in args.input_shape.split("x")))
    rt = Runtime.load(bundle, threads=args.intra_threads)
    shape = (1, *rt.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(rt.inputs[0].dtype) for _ in range(args.inputs)]
    expected = [rt.predict(x) for x in inputs]

    warm_barrier = threading.Barrier(args.threads + 1)
    go = threading.Event()
    mismatches = [0] * args.threads
    max_diff = [0.0] * args.threads

    def worker(t: int) -> None:
        for i in range(args.per_thread):
            if i == args.warm:
                warm_barrier.wait()
                go.wait()
            k = (t * 7 + i) % len(inputs)
            out = rt.predict(inputs[k])
            if not np.array_equal(out, expected[k]):
                mismatches[t] += 1
                max_diff[t] = max(max_diff[t], float(np.abs(out - expected[k]).max()))
        if args.per_thread <= args.warm:
            warm_barrier.wait()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    warm_barrier.wait()
    rss_start = rss_mib()
    go.set()
    peak = rss_start
    while any(th.is_alive() for th in threads):
        peak = max(peak, rss_mib())
        time.sleep(0.2)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    rss_end = rss_mib()
    total = args.threads * args.per_thread
    growth = (rss_end - rss_start) / rss_start * 100
    print(f"# soak of {bundle.name}: {args.threads} threads x {args.per_thread} predictions (batch 1), "
          f"{args.intra_threads} intra-op thread(s), {os.cpu_count()} cores, {wall:.1f} s, {total / wall:.1f} pred/s")
    print(f"outputs   {total - sum(mismatches)}/{total} identical to single-threaded"
          + (f" (max abs diff {max(max_diff):.3g})" if sum(mismatches) else ""))
    print(f"RSS MiB   after warm-up {rss_start:.1f}   end {rss_end:.1f}   peak {peak:.1f}   growth {growth:+.2f}%")
    print("# targets: all outputs identical, RSS growth < 5%")
    return 0 if not sum(mismatches) and growth < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
