#!/usr/bin/env python3
"""Time each export stage (load, probe, trace, export, simplify, check, validate) for a model.

Prints the median of --runs runs per stage, in seconds, from the timings that
``edge_se.export.pipeline.export_bundle`` records in each bundle's manifest.

    python benchmarks/export_time.py --model se_resnet50 --input-shape 1x3x224x224 --runs 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="se_resnet50")
    ap.add_argument("--input-shape", default="1x3x224x224")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--simplifier", default="onnxslim")
    args = ap.parse_args()

    from edge_se import progress
    from edge_se.export.checks import parse_input_shape
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    shape = parse_input_shape(args.input_shape)
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            t0 = time.perf_counter()
            b = export_bundle(args.model, shape, Path(tmp) / f"b{i}", force=True, simplifier=args.simplifier)
            t = dict(b.manifest["timings"])
            t["total"] = time.perf_counter() - t0
            runs.append(t)
    import torch

    print(f"# export stage times, {args.model} {args.input_shape}, median of {args.runs} runs")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, simplifier {args.simplifier}")
    print(f"{'stage':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for key in runs[0]:
        vals = [r[key] for r in runs]
        print(f"{key:<10} {statistics.median(vals):>9.2f} {min(vals):>7.2f} {max(vals):>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
