"""INT8/FP16 accuracy of every attention type's digits net on digits-hard (ONNX Runtime CPU).

For each ``<attn>_digits`` net (trained once, cached by ``edge_se.data.cache``): export, one
calibration run on ``calibration/digits-deploy.toml`` (1,024 training-augmented train digits),
weights rounded by GPTQ from the same set (``--weight-rounding nearest`` for plain rounding), then
FP32, FP16 and INT8 with the policies ``all``, ``keep-gates`` and ``auto`` (both INT8 flavours:
``cpu`` U8S8 and ``trt`` symmetric QDQ, each built by ``edge_se.quantize.flavours``) and, as the
anchor, ONNX Runtime's own ``quantize_static`` with its defaults on the same set, measured on
digits-hard (the held-out digits under 20 seeded augmentations, 9,000 samples, seed 0): accuracy,
accuracy drop vs FP32 (points), top-1 agreement with FP32 (%), logit SQNR (dB) and the share of
the net's multiply-accumulates that run in INT8. ``auto`` selects for each flavour on its own,
with its budget (``--min-agreement``, ``--max-drop``, ``--min-int8``), on *other* draws of digits-hard (seeds 1 and 2: the same held-out digits,
other augmentations, 18,000 samples) and is reported on seed 0 (``--eval-seed``: another draw, to
see how much the figures move between draws; it must not be a selection seed).

    python benchmarks/int8_accuracy.py                    # all six nets, default method
    python benchmarks/int8_accuracy.py --nets se cbam --method minmax --json out.json
    python benchmarks/int8_accuracy.py --policies all --method percentile --no-fp16   # compare methods
    python benchmarks/int8_accuracy.py --policies all auto --no-fp16 --eval-seed 3    # a second draw
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
SELECTION_SEEDS = (1, 2)  # the digits-hard draws auto selects on


def main(argv: list[str] | None = None) -> int:
    from edge_se import progress
    from edge_se.calibration.build import calibration_from
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.data.digits import digits_hard
    from edge_se.export.pipeline import export_bundle
    import numpy as np

    from edge_se.quantize import flavours, policies
    from edge_se.quantize.fp16 import convert_fp16
    from edge_se.quantize.metrics import run_onnx
    from edge_se.reference.metrics import logit_metrics
    from edge_se.quantize.ranges import METHODS, collect_statistics
    from edge_se.quantize.stage import DEFAULT_METHOD, named_copy
    from edge_se.quantize.weight_params import WeightParams

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    ap.add_argument("--method", choices=("auto",) + METHODS, default=DEFAULT_METHOD,
                    help="activation ranges (default auto: measured for each INT8 file on the selection draws)")
    ap.add_argument("--policies", nargs="+", choices=policies.POLICIES, default=list(policies.POLICIES))
    ap.add_argument("--no-fp16", action="store_true", help="skip the FP16 rows")
    ap.add_argument("--max-drop", type=float, default=policies.Budget.max_drop)
    ap.add_argument("--min-agreement", type=float, default=policies.Budget.min_agreement)
    ap.add_argument("--min-int8", type=float, default=policies.Budget.min_int8)
    ap.add_argument("--no-anchor", action="store_true", help="skip ONNX Runtime's own quantize_static anchor")
    ap.add_argument("--finetune", action="store_true",
                    help="also fine-tune each policy's files (quantization-aware distillation on the calibration set)")
    ap.add_argument("--finetune-epochs", type=int, default=None)
    ap.add_argument("--calib", default=str(ROOT / "calibration" / "digits-deploy.toml"))
    ap.add_argument("--weight-rounding", choices=flavours.WEIGHT_ROUNDINGS, default=flavours.DEFAULT_WEIGHT_ROUNDING)
    ap.add_argument("--every", type=int, default=1, help="use every N-th digits-hard sample (smoke runs)")
    ap.add_argument("--checkpoints", help="folder of <attn>_digits.pt checkpoints (default: train once, cached)")
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--eval-seed", type=int, default=0,
                    help="the digits-hard draw reported (default 0; 1 and 2 are auto's selection draws)")
    args = ap.parse_args(argv)
    if args.eval_seed in SELECTION_SEEDS:
        ap.error(f"--eval-seed {args.eval_seed} is one of auto's selection draws {SELECTION_SEEDS}: pick another")
    progress.set_quiet(True)
    budget = policies.Budget(max_drop=args.max_drop, min_agreement=args.min_agreement, min_int8=args.min_int8).check()

    x, y = digits_hard(seed=args.eval_seed)
    sel = [digits_hard(seed=s) for s in SELECTION_SEEDS]
    xs, ys = np.concatenate([a for a, _ in sel]), np.concatenate([b for _, b in sel])
    x, y, xs, ys = x[:: args.every], y[:: args.every], xs[:: args.every], ys[:: args.every]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-se-bench-") as tmp:
        tmp = Path(tmp)
        calib = calibration_from(args.calib, tmp)
        for attn in args.nets:
            t0 = time.perf_counter()
            ckpt = Path(args.checkpoints) / f"{attn}_digits.pt" if args.checkpoints else cached_digits_checkpoint(attn)
            bundle = export_bundle(f"{attn}_digits", None, tmp / attn, checkpoint=ckpt)
            fp32 = named_copy(bundle.root / "model.onnx", tmp / f"{attn}.prepared.onnx")
            ref = run_onnx(fp32, x)
            ref_sel = run_onnx(fp32, xs)  # FP32 on the selection draws, shared by every choice below
            stats = collect_statistics(fp32, calib.batches(32))
            weights = flavours.rounded_weights(args.weight_rounding, fp32, calib.batches(32))
            builders, methods = {}, {}
            for fl in flavours.FLAVOURS:
                params = WeightParams()  # weight scales computed once per file, as the stage does
                if args.method == "auto":
                    ranges, report = flavours.choose_ranges(fl, stats, weights[fl], fp32, xs, ref=ref_sel,
                                                            params=params)
                    methods[fl] = report["chosen"]
                else:
                    ranges, methods[fl] = stats.ranges(args.method), args.method
                builders[fl] = flavours.builder(fl, ranges, weights[fl], params=params)
            print(f"# {attn}_digits ranges: {methods}", flush=True)

            def add(variant: str, path: Path, kept: int | str = "-", share: float | None = None,
                    seconds: float | None = None) -> None:
                m = logit_metrics(ref, run_onnx(path, x), y)
                rows.append({"net": f"{attn}_digits", "variant": variant, "kept_float": kept, "int8_macs": share,
                             "seconds": seconds, **m})
                print(_fmt(rows[-1]), flush=True)

            add("fp32", fp32)
            if not args.no_fp16:
                convert_fp16(fp32, tmp / f"{attn}.fp16.onnx")
                add("fp16", tmp / f"{attn}.fp16.onnx")
            if not args.no_anchor:
                t1 = time.perf_counter()
                _ort_anchor(fp32, tmp / f"{attn}.ort.onnx", calib)
                add("int8 ort quantize_static", tmp / f"{attn}.ort.onnx", "ORT defaults (QDQ, U8S8, per-tensor, MinMax)",
                    _qdq_mac_share(fp32, tmp / f"{attn}.ort.onnx"), time.perf_counter() - t1)
            for policy in args.policies:
                for fl, build in builders.items():
                    t1 = time.perf_counter()
                    d = policies.decide(policy, fp32, builder=build, x=xs, labels=ys, budget=budget,
                                        ref=ref_sel)
                    out = tmp / f"{attn}.{fl}.onnx"
                    build(fp32, out, d.kept_nodes)
                    note = "" if d.details.get("budget_met", True) else ", budget missed"
                    add(f"int8 {fl} {policy}", out, f"{len(d.kept_blocks)} blocks{note}", d.int8_mac_share,
                        time.perf_counter() - t1)
                    if args.finetune:
                        from edge_se.quantize import qad

                        info = qad.finetune(out, fp32, calib.array(), tmp / f"{attn}.{fl}.qad.onnx",
                                            epochs=args.finetune_epochs or qad.DEFAULT_EPOCHS, check_x=xs,
                                            check_ref=ref_sel)
                        sim = info["sim_vs_deployed_sqnr_db"]["after"]
                        kept = "" if info["applied"] else f"; not applied: {info['reason']}"
                        add(f"int8 {fl} {policy}+finetune", tmp / f"{attn}.{fl}.qad.onnx",
                            f"sim vs deployed {sim:.1f} dB{kept}", d.int8_mac_share, info["seconds"])
                        rows[-1]["sim_vs_deployed_sqnr_db"] = info["sim_vs_deployed_sqnr_db"]
            print(f"# {attn}_digits: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"method": args.method, "eval_seed": args.eval_seed, "weight_rounding": args.weight_rounding,
                                               "budget": budget.to_dict(), "rows": rows}, indent=2))
    print()
    print(f"calibration: {calib.count} samples ({args.method}, {args.weight_rounding} weights); digits-hard: "
          f"{len(x)} samples (seed {args.eval_seed}); auto: {budget.to_dict()}, selected on digits-hard "
          f"seeds {'+'.join(map(str, SELECTION_SEEDS))} ({len(xs)} samples)")
    print(_HEADER)
    for r in rows:
        print(_fmt(r))
    return 0


_HEADER = (f"{'net':14s} {'variant':26s} {'acc %':>7s} {'drop':>6s} {'agree %':>8s} {'SQNR dB':>8s} "
           f"{'INT8 MACs':>9s} {'time s':>7s}  kept in float")


def _fmt(r: dict) -> str:
    sq = r["sqnr_db"]
    sq_s = "inf" if sq == float("inf") else f"{sq:.1f}"
    share = r.get("int8_macs")
    share_s = "-" if share is None else f"{100 * share:.1f} %"
    secs = "-" if r.get("seconds") is None else f"{r['seconds']:.1f}"
    return (f"{r['net']:14s} {r['variant']:26s} {r['accuracy']:7.2f} {r['accuracy_drop']:+6.2f} "
            f"{r['agreement']:8.2f} {sq_s:>8s} {share_s:>9s} {secs:>7s}  {r['kept_float']}")


def _qdq_mac_share(fp32: Path, quantized: Path) -> float | None:
    """Share of the FP32 model's weighted-op MACs whose node, in the QDQ file, reads a
    DequantizeLinear activation and weight (what ONNX Runtime fuses into integer kernels)."""
    import onnx

    from edge_se.quantize.policies import weighted_macs

    macs = weighted_macs(onnx.load(str(fp32)))
    q = onnx.load(str(quantized))
    producer = {o: n.op_type for n in q.graph.node for o in n.output}
    int8 = {n.name for n in q.graph.node if n.name in macs and len(n.input) > 1
            and producer.get(n.input[0]) == producer.get(n.input[1]) == "DequantizeLinear"}
    total = sum(macs.values())
    return None if not total else round(sum(v for k, v in macs.items() if k in int8) / total, 4)


def _ort_anchor(fp32: Path, out: Path, calib) -> None:
    """ONNX Runtime's ``quantize_static`` with its defaults (QDQ, uint8 activations, int8 per-tensor
    weights, MinMax) on the same calibration set: the anchor a user would reach for first."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" notes

    class Reader(CalibrationDataReader):
        def __init__(self):
            import onnx

            self.name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
            self.it = iter(calib.batches(32))

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {self.name: batch}

    quantize_static(str(fp32), str(out), Reader())


if __name__ == "__main__":
    sys.exit(main())
