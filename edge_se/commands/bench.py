"""``edge-se bench``: latency percentiles and throughput of a bundle on the embedded runtime."""

from __future__ import annotations

import argparse
import json
import threading
import time

from edge_se.runtime.cli_args import add_runtime_arguments, load_runtime

NAME = "bench"
HELP = "measure latency (p50/p90/p99) and throughput of a bundle on the embedded runtime"
ORDER = 61
EXAMPLES = """  edge-se bench bundles/se18 --batch 1 --threads 2 --duration 10
  edge-se bench bundles/se18 --batch 8 --precision int8 --json
  edge-se bench bundles/se18 --concurrency 4 --threads 1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (or a single .onnx/.engine/.ts file)")
    parser.add_argument("--batch", type=int, default=1, metavar="N", help="batch size per call (default 1)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to measure after warm-up (default 10)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="threads calling predict at the same time (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_runtime_arguments(parser)


def measure(rt, feeds: dict, duration: float, concurrency: int = 1) -> dict:
    """Call ``rt.run(feeds)`` from ``concurrency`` threads for ``duration`` s; latency stats in ms."""
    import numpy as np

    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + duration

    def worker(out: list[float]) -> None:
        while True:
            t0 = time.perf_counter()
            rt.run(feeds)
            t1 = time.perf_counter()
            out.append(t1 - t0)
            if t1 >= stop:
                return

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(lat,)) for lat in latencies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    lat_ms = np.array([x for lat in latencies for x in lat]) * 1e3
    batch = next(iter(feeds.values())).shape[0]
    p50, p90, p99 = np.percentile(lat_ms, [50, 90, 99])
    return {
        "batch": batch, "concurrency": concurrency, "calls": int(lat_ms.size), "seconds": round(wall, 3),
        "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(lat_ms.mean()), 3),
        "throughput_per_s": round(lat_ms.size * batch / wall, 2),
    }


def run(args: argparse.Namespace) -> int:
    from edge_se.errors import InputError

    if args.batch < 1 or args.concurrency < 1 or not args.duration > 0:
        raise InputError(
            f"--batch and --concurrency must be positive and --duration above 0, got {args.batch}, "
            f"{args.concurrency}, {args.duration}"
        )
    rt = load_runtime(args)
    for spec in rt.inputs:  # one call must take the whole batch, or the figures would be for chunks
        lo, hi = spec.batch_range
        if spec.static_batch is None and (args.batch < lo or (hi is not None and args.batch > hi)):
            raise InputError(
                f"--batch {args.batch} is outside the model's batch range [{lo}, {hi if hi is not None else 'inf'}] "
                f"(input '{spec.name}', the engine's optimization profile); pass --batch between {lo} and "
                f"{hi if hi is not None else 'inf'}, or rebuild the engine with a larger profile"
            )
    feeds = rt.example_inputs(args.batch, seed=0)  # refuses a batch above the memory bound before allocating
    if feeds is None:
        raise InputError("the model's input has dynamic dims other than the batch and the bundle records no "
                         "input shape; bench needs a bundle with model.input_shape")
    stats = measure(rt, feeds, args.duration, args.concurrency)
    info = rt.describe()
    if args.json:
        print(json.dumps({"runtime": info, **stats}, indent=2))
        return 0
    print(f"backend     {info['backend']} {info.get('version', '')}")
    print(f"providers   {', '.join(info['providers'])}")
    print(f"artifact    {info['artifact']} ({info.get('precision') or 'unknown precision'})")
    threads = info.get("intra_op_threads", info.get("threads"))
    print(f"batch       {stats['batch']}   threads {threads if threads is not None else 'default'}   "
          f"concurrency {stats['concurrency']}")
    print(f"latency ms  p50 {stats['p50_ms']:.2f}   p90 {stats['p90_ms']:.2f}   p99 {stats['p99_ms']:.2f}   "
          f"({stats['calls']} calls in {stats['seconds']:.1f} s)")
    print(f"throughput  {stats['throughput_per_s']:.1f} samples/s")
    return 0
