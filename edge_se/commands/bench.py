"""``edge-se bench``: latency percentiles and throughput of a bundle on the embedded runtime."""

from __future__ import annotations

import argparse
import json

from edge_se.runtime.cli_args import add_runtime_arguments, check_choices, load_runtime, split_csv
from edge_se.runtime.latency import measure

NAME = "bench"
HELP = "measure latency (p50/p90/p99) and throughput of a bundle on the embedded runtime"
ORDER = 61
EXAMPLES = """  edge-se bench bundles/se18 --batch 1 --threads 2 --duration 10
  edge-se bench bundles/se18 --batch 8 --precision int8 --json
  edge-se bench bundles/se18 --concurrency 4 --threads 1
  edge-se bench bundles/se18 --backends all --duration 3 --save-choice"""
#: ``--backends`` times every row in this many interleaved rounds of ``--duration / ROUNDS`` s
#: (the medians of the rounds are reported), all rows loaded at once
ROUNDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (or a single .onnx/.engine/.ts file)")
    parser.add_argument("--batch", type=int, default=1, metavar="N", help="batch size per call (default 1)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to measure after warm-up (default 10)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="threads calling predict at the same time (default 1)")
    g = parser.add_argument_group("comparing backends")
    g.add_argument("--backends", metavar="LIST",
                   help="measure every backend x precision x file of the bundle: 'all' (ONNX Runtime, OpenVINO "
                        "when installed, TensorRT with a GPU) or a comma-separated list; each row is timed for "
                        "--duration s in all, in interleaved rounds")
    g.add_argument("--precisions", metavar="LIST", help="with --backends: subset of fp32,fp16,bf16,int8 "
                                                         "(default: all)")
    g.add_argument("--save-choice", action="store_true",
                   help="with --backends: record the fastest backend and file per precision in the bundle; "
                        "--backend auto then uses it on a machine with this CPU")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from edge_se.errors import InputError

    if args.batch < 1 or args.concurrency < 1 or not args.duration > 0:
        raise InputError(
            f"--batch and --concurrency must be positive and --duration above 0, got {args.batch}, "
            f"{args.concurrency}, {args.duration}"
        )
    if args.backends is not None:
        return compare(args)
    if args.save_choice or args.precisions:
        raise InputError("--save-choice and --precisions go with --backends (e.g. --backends all)")
    rt = load_runtime(args)
    check_batch(rt, args.batch)
    feeds = example_feeds(rt, args.batch)
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


def check_batch(rt, batch: int) -> None:
    """Refuse a batch outside the model's range: one call must take it whole, or the figures
    would be for chunks."""
    from edge_se.errors import InputError

    for spec in rt.inputs:
        lo, hi = spec.batch_range
        if spec.static_batch is None and (batch < lo or (hi is not None and batch > hi)):
            raise InputError(
                f"--batch {batch} is outside the model's batch range [{lo}, {hi if hi is not None else 'inf'}] "
                f"(input '{spec.name}', the engine's optimization profile); pass --batch between {lo} and "
                f"{hi if hi is not None else 'inf'}, or rebuild the engine with a larger profile"
            )


def example_feeds(rt, batch: int) -> dict:
    """Seeded inputs of the model's shape at ``batch`` (refused above the memory bound)."""
    from edge_se.errors import InputError

    feeds = rt.example_inputs(batch, seed=0)
    if feeds is None:
        raise InputError("the model's input has dynamic dims other than the batch and the bundle records no "
                         "input shape; bench needs a bundle with model.input_shape")
    return feeds


def compare(args: argparse.Namespace) -> int:
    """``--backends``: every backend x precision x file, the fastest per precision marked (and saved)."""
    from pathlib import Path

    import numpy as np

    from edge_se.bundle import Bundle, utc_now
    from edge_se.errors import EdgeSEError, InputError
    from edge_se.runtime import Runtime, choice
    from edge_se.runtime.cpu import cpu_model
    from edge_se.runtime.source import PRECISIONS

    if not Path(args.bundle).is_dir():
        raise InputError(f"--backends compares the files of a bundle; {args.bundle} is not a bundle folder")
    if args.artifact or args.precision or args.backend != "auto":
        raise InputError("--backends measures every backend and file itself; drop --backend, --precision and "
                         "--artifact (or drop --backends to measure one)")
    backends = choice.installed_backends() if args.backends == "all" else \
        check_choices(split_csv(args.backends), choice.CHOOSABLE, "--backends (or 'all')")
    precisions = check_choices(split_csv(args.precisions), PRECISIONS, "--precisions") if args.precisions \
        else list(PRECISIONS)
    bundle = Bundle.open(args.bundle)
    jobs = choice.candidates(bundle.artifacts, backends, precisions)
    if not jobs:
        from edge_se.runtime.cpu import missing_bf16

        why = f" ({missing_bf16()}: bf16 is not measured here)" if "bf16" in precisions and missing_bf16() else ""
        raise InputError(f"bundle {bundle.root} has no artifact for {', '.join(backends)} at "
                         f"{', '.join(precisions)}{why}")
    rows, loaded, ref = [], [], None
    for job in jobs:  # load every row first, then time them interleaved
        row = {"backend": job.backend, "precision": job.precision, "artifact": job.artifact}
        rows.append(row)
        try:
            rt = Runtime.load(bundle.root, job.backend, artifact=job.artifact,
                              precision="bf16" if job.precision == "bf16" else None, verify=not args.no_verify,
                              warmup=args.warmup, threads=args.threads, cache_dir=args.cache_dir)
            check_batch(rt, args.batch)
            feeds = example_feeds(rt, args.batch)
            out = next(iter(rt.run(feeds).values())).astype(np.float64)
            if ref is None and job.precision == "fp32":
                ref = out
            if ref is not None and ref.shape == out.shape:
                row["rel_error"] = float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-12))
            info = rt.describe()
            row["threads"] = info.get("intra_op_threads", info.get("threads"))
            loaded.append((row, rt, feeds))
        except EdgeSEError as e:  # one backend that cannot run this file must not hide the others
            row["error"] = str(e)
    rounds: dict[int, list[dict]] = {id(row): [] for row, _, _ in loaded}
    for i in range(ROUNDS):  # a shared machine's drift then hits every row alike
        if not args.json:
            print(f"timing {len(loaded)} rows, round {i + 1}/{ROUNDS} ...", flush=True)
        for row, rt, feeds in loaded:
            rounds[id(row)].append(measure(rt, feeds, args.duration / ROUNDS, args.concurrency))
    for row, rt, _ in loaded:
        stats = rounds[id(row)]
        row.update({k: round(float(np.median([s[k] for s in stats])), 3)
                    for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s")})
        row.update(batch=args.batch, concurrency=args.concurrency, calls=sum(s["calls"] for s in stats),
                   seconds=round(sum(s["seconds"] for s in stats), 3), rounds=ROUNDS)
        rt.close()
    settings = {"batch": args.batch, "threads": args.threads, "concurrency": args.concurrency,
                "duration_s": args.duration}
    record = choice.build(rows, settings, utc_now())
    if args.save_choice:
        from edge_se.manifest import RUNTIME_CHOICE

        with bundle.writing():
            bundle.manifest[RUNTIME_CHOICE] = record
            bundle.save()
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    best = {(c["backend"], c["artifact"], p) for p, c in record["precisions"].items()}
    print(f"\n{bundle.root.name}, batch {args.batch}, threads {args.threads or 'default'}, {cpu_model()}")
    print(f"{'backend':<12} {'precision':<9} {'artifact':<22} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'per s':>8} {'rel err':>8}")
    for r in rows:
        if r.get("error"):
            print(f"{r['backend']:<12} {r['precision']:<9} {r['artifact']:<22} {r['error']}")
            continue
        err = f"{r['rel_error']:.1e}" if "rel_error" in r else "-"
        mark = "  <- fastest " + r["precision"] if (r["backend"], r["artifact"], r["precision"]) in best else ""
        print(f"{r['backend']:<12} {r['precision']:<9} {r['artifact']:<22} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['throughput_per_s']:>8.1f} {err:>8}{mark}")
    print("rel err: max |out - fp32| / max |fp32| on seeded inputs, against the first fp32 row")
    if args.save_choice:
        print(f"saved the fastest per precision in {bundle.root / 'manifest.json'} ({RUNTIME_CHOICE}); "
              "--backend auto uses it on this CPU")
    return 0
