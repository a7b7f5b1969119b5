"""INT8/FP16 accuracy of every attention type's digits net on digits-hard (ONNX Runtime CPU).

For each ``<attn>_digits`` net (trained once, cached by ``edge_se.data.cache``): export, one
calibration run on ``calibration/digits.toml`` (256 train digits), then FP32, FP16 and INT8 with
the policies ``all``, ``keep-gates`` and ``auto`` (both INT8 flavours: ``cpu`` U8S8 and ``trt``
symmetric QDQ), measured on digits-hard (the held-out digits under 20 seeded augmentations,
9,000 samples, seed 0): accuracy, accuracy drop vs FP32 (points), top-1 agreement with FP32 (%)
and logit SQNR (dB). ``auto`` selects with ``--max-drop`` on a *different* draw of digits-hard
(seed 1: the same held-out digits, other augmentations) and is reported on seed 0.

    python benchmarks/int8_accuracy.py                    # all six nets, default method
    python benchmarks/int8_accuracy.py --nets se cbam --method minmax --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
NETS = ("se", "cbam", "bam", "sk", "simam", "eca")


def main(argv: list[str] | None = None) -> int:
    from edge_se import progress
    from edge_se.calibration.build import calibration_from
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.data.digits import digits_hard
    from edge_se.export.pipeline import export_bundle
    from edge_se.quantize import policies
    from edge_se.quantize.cpu_int8 import quantize_cpu
    from edge_se.quantize.fp16 import convert_fp16
    from edge_se.quantize.metrics import logit_metrics, run_onnx
    from edge_se.quantize.qdq_trt import quantize_trt
    from edge_se.quantize.ranges import METHODS, collect_statistics
    from edge_se.quantize.stage import DEFAULT_METHOD, named_copy

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    ap.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    ap.add_argument("--max-drop", type=float, default=policies.DEFAULT_MAX_DROP)
    ap.add_argument("--calib", default=str(ROOT / "calibration" / "digits.toml"))
    ap.add_argument("--every", type=int, default=1, help="use every N-th digits-hard sample (smoke runs)")
    ap.add_argument("--checkpoints", help="folder of <attn>_digits.pt checkpoints (default: train once, cached)")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    progress.set_quiet(True)

    calib = calibration_from(args.calib)
    x, y = digits_hard(seed=0)
    xs, ys = digits_hard(seed=1)
    x, y, xs, ys = x[:: args.every], y[:: args.every], xs[:: args.every], ys[:: args.every]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-se-bench-") as tmp:
        tmp = Path(tmp)
        for attn in args.nets:
            t0 = time.perf_counter()
            ckpt = Path(args.checkpoints) / f"{attn}_digits.pt" if args.checkpoints else cached_digits_checkpoint(attn)
            bundle = export_bundle(f"{attn}_digits", None, tmp / attn, checkpoint=ckpt)
            fp32 = named_copy(bundle.root / "model.onnx", tmp / f"{attn}.prepared.onnx")
            ref = run_onnx(fp32, x)
            ranges = collect_statistics(fp32, calib.batches(32)).ranges(args.method)

            def cpu_builder(src, out, keep, ranges=ranges):
                quantize_cpu(src, out, ranges, keep)

            def add(variant: str, path: Path, kept: int | str = "-") -> None:
                m = logit_metrics(ref, run_onnx(path, x), y)
                rows.append({"net": f"{attn}_digits", "variant": variant, "kept_float": kept, **m})
                print(_fmt(rows[-1]), flush=True)

            add("fp32", fp32)
            convert_fp16(fp32, tmp / f"{attn}.fp16.onnx")
            add("fp16", tmp / f"{attn}.fp16.onnx")
            for policy in policies.POLICIES:
                d = policies.decide(policy, fp32, builder=cpu_builder, x=xs, labels=ys, max_drop=args.max_drop)
                label = f"{policy} (kept {len(d.kept_blocks)} blocks)"
                quantize_cpu(fp32, tmp / f"{attn}.cpu.onnx", ranges, d.kept_nodes)
                add(f"int8 cpu {policy}", tmp / f"{attn}.cpu.onnx", label)
                quantize_trt(fp32, tmp / f"{attn}.trt.onnx", ranges, d.kept_nodes)
                add(f"int8 trt {policy}", tmp / f"{attn}.trt.onnx", label)
            print(f"# {attn}_digits: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"method": args.method, "max_drop": args.max_drop, "rows": rows}, indent=2))
    print()
    print(f"calibration: {calib.count} samples ({args.method}); digits-hard: {len(x)} samples; "
          f"auto: --max-drop {args.max_drop} selected on digits-hard seed 1")
    print(_HEADER)
    for r in rows:
        print(_fmt(r))
    return 0


_HEADER = f"{'net':14s} {'variant':22s} {'acc %':>7s} {'drop':>6s} {'agree %':>8s} {'SQNR dB':>8s}  kept in float"


def _fmt(r: dict) -> str:
    sq = r["sqnr_db"]
    sq_s = "inf" if sq == float("inf") else f"{sq:.1f}"
    return (f"{r['net']:14s} {r['variant']:22s} {r['accuracy']:7.2f} {r['accuracy_drop']:+6.2f} "
            f"{r['agreement']:8.2f} {sq_s:>8s}  {r['kept_float']}")


if __name__ == "__main__":
    sys.exit(main())
