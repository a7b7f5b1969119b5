"""``edge-se quantize``: add FP16 or INT8 artifacts to a bundle and validate them."""

from __future__ import annotations

import argparse
import json
import math
from edge_se.bundle import owned_tempdir
from edge_se.commands._common import trt_version_arg

NAME = "quantize"
ORDER = 30
HELP = "add FP16 or INT8 (TensorRT QDQ, CPU-fast, TensorRT cache) artifacts to a bundle"
DESCRIPTION = (
    "Add reduced-precision artifacts to BUNDLE (made by 'edge-se export') and validate them\n"
    "against the PyTorch reference; nothing is added unless every check passes.\n\n"
    "  --precision fp16: model.fp16.onnx (inputs/outputs FP32; reductions, exp/softmax, pow/div\n"
    "    kept FP32 by rule).\n"
    "  --precision int8: from ONE calibration run on --calib: model.int8.trt.onnx (TensorRT-ready\n"
    "    QDQ, symmetric INT8, per-channel weights), model.int8.cpu.onnx (fast on ONNX Runtime CPU:\n"
    "    uint8 activations, int8 per-channel weights) and model.int8.calib.cache (TensorRT 8.x\n"
    "    calibration cache for implicit-INT8 builds of model.onnx). Weights of the QDQ files are\n"
    "    rounded by GPTQ (output-error-compensating, from --calib) unless --weight-rounding nearest.\n"
    "    --pte adds model.int8.pte (ExecuTorch, XNNPACK INT8 by PT2E from model.pt2, same set).\n\n"
    "Policies: auto (default: INT8 everywhere, then, only if the budget is significantly missed,\n"
    "the blocks that repair the most per multiply-accumulate kept float, never more than\n"
    "1 - --min-int8 of the MACs; budget: --min-agreement % top-1 agreement with FP32, and\n"
    "--max-drop points of accuracy when --eval has labels; chosen for each INT8 file on its own),\n"
    "all (everything INT8 that can be), keep-gates (attention gates - pool, FC, sigmoid/softmax,\n"
    "rescaling Mul - kept float; found by graph pattern)."
)
EXAMPLES = """  edge-se quantize bundles/se18 --precision fp16
  edge-se quantize bundles/se_digits --precision int8 --calib calibration/digits.toml
  edge-se quantize bundles/se50 --precision int8 --calib calib_set/ --policy keep-gates --method percentile
  edge-se quantize bundles/se_digits --precision int8 --calib calibration/digits.toml --eval labelled/ --max-drop 0.2
  edge-se quantize bundles/se_digits --precision int8 --calib calibration/digits.toml --min-agreement 99.5 --min-int8 0.9
  edge-se quantize bundles/se_digits --precision int8 --calib calibration/digits.toml --pte   # + ExecuTorch INT8"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge_se.quantize.policies import Budget, POLICIES
    from edge_se.quantize.ranges import DEFAULT_PERCENTILE, METHODS
    from edge_se.quantize.stage import DEFAULT_METHOD, DEFAULT_POLICY, PRECISIONS

    p.add_argument("bundle", help="bundle folder holding model.onnx (FP32)")
    p.add_argument("--precision", required=True, choices=PRECISIONS, help="fp16 or int8")
    p.add_argument("--calib", help="int8: a folder of images (preprocessed as the bundle records), a .npy/.npz of "
                   "preprocessed tensors, a calibration set folder or a TOML spec (see calibration/*.toml)")
    p.add_argument("--eval", dest="eval_set", help="int8: labelled set folder or TOML spec for auto's budget and the "
                   "accuracy check (default: the calibration set)")
    p.add_argument("--policy", choices=POLICIES, default=None, help=f"int8 precision policy (default {DEFAULT_POLICY})")
    p.add_argument("--max-drop", type=float, default=None,
                   help=f"auto: accuracy-drop budget in points on a labelled --eval set (default {Budget.max_drop:g})")
    p.add_argument("--min-agreement", type=float, default=None,
                   help=f"auto: top-1 agreement with FP32 to keep, in %% (default {Budget.min_agreement:g})")
    p.add_argument("--min-int8", type=float, default=None,
                   help=f"auto: fraction of the multiply-accumulates that must run in INT8 (default {Budget.min_int8:g})")
    p.add_argument("--method", choices=("auto",) + METHODS, default=None,
                   help=f"int8 activation-range method (default {DEFAULT_METHOD}: measured for each INT8 file among "
                   "minmax, mse and percentile 99.999)")
    p.add_argument("--percentile", type=float, default=None,
                   help=f"percentile for --method percentile (default {DEFAULT_PERCENTILE})")
    p.add_argument("--weight-rounding", choices=("gptq", "nearest"), default=None,
                   help="int8 weights: gptq (error-compensating rounding from the calibration set; default) "
                   "or nearest (plain round-to-nearest)")
    p.add_argument("--finetune", action="store_true",
                   help="int8: quantization-aware distillation of both Q/DQ files towards FP32 on the --calib images "
                   "(no labels needed; minutes on small nets)")
    p.add_argument("--finetune-epochs", type=int, default=None, help="int8 --finetune: epochs (default 8)")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="int8: memory the run may use, e.g. 4G or 800M (default: half of what is available); "
                   "calibration and evaluation batches are chosen to fit, and a limit too small for one sample "
                   "is refused before anything runs")
    p.add_argument("--reduce-range", dest="reduce_range", action="store_true", default=None,
                   help="CPU INT8 file with 7-bit weights, which x86 CPUs without VNNI need (their INT8 kernels "
                        "saturate 8-bit weights); default: on when this CPU is one, off elsewhere")
    p.add_argument("--no-reduce-range", dest="reduce_range", action="store_false",
                   help="8-bit CPU weights even on such a CPU (for files meant for VNNI or ARM CPUs)")
    p.add_argument("--trt-cache-version", default="8.6.1", type=trt_version_arg, metavar="TRT_VERSION",
                   help="int8: TensorRT version the calibration cache is for, dotted (default 8.6.1; the header "
                        "spells it TRT-8601-...; 10.3 gives TRT-100300-...)")
    p.add_argument("--pte", action="store_true",
                   help="int8: also write model.int8.pte, ExecuTorch (XNNPACK) INT8 quantized from the bundle's "
                        "model.pt2 by PT2E on the same --calib set, validated on the executorch backend "
                        "(needs the executorch extra)")
    p.add_argument("--fp16-io", action="store_true", help="fp16: make the model's inputs/outputs FP16 too")
    p.add_argument("--images", help="fp16: folder of real images for validation (default: scikit-learn's samples)")
    from edge_se.commands._reference_args import add_reference_arguments

    add_reference_arguments(p)


def _refuse(args: argparse.Namespace, names: list[str], precision: str) -> None:
    from edge_se.errors import InputError

    given = [n for n in names if getattr(args, n) not in (None, False)]
    if given:
        opts = ", ".join("--" + n.replace("_", "-") for n in given)
        raise InputError(f"{opts} only apply to --precision {'int8' if precision == 'fp16' else 'fp16'}; "
                         f"remove them for --precision {precision}")


def run(args: argparse.Namespace) -> int:
    from edge_se.bundle import Bundle
    from edge_se.commands._reference_args import reference_options
    from edge_se.errors import CalibrationError, InputError
    from edge_se.quantize import stage
    from edge_se.tensorrt.versions import calibration_cache_version

    if args.max_drop is not None and not (math.isfinite(args.max_drop) and 0 <= args.max_drop <= 100):
        raise InputError(f"--max-drop must be a finite number of points between 0 and 100, got {args.max_drop}; "
                         "e.g. --max-drop 0.2")
    bundle = Bundle.open(args.bundle)
    if args.precision == "fp16":
        _refuse(args, ["calib", "eval_set", "policy", "max_drop", "min_agreement", "min_int8", "method", "percentile",
                       "reduce_range", "weight_rounding", "finetune", "finetune_epochs", "max_memory", "pte"], "fp16")
        stage._fp32_onnx(bundle)
        stage.quantize_fp16(bundle, keep_io_types=not args.fp16_io, images=args.images,
                             reference=reference_options(args))
        added = [stage.FP16_ARTIFACT]
    else:
        _refuse(args, ["fp16_io", "images"], "int8")
        if not args.calib:
            raise CalibrationError("--precision int8 needs --calib (a folder of images, a .npy/.npz of preprocessed "
                                   "tensors, a calibration set folder or a TOML spec, e.g. calibration/digits.toml)")
        if args.percentile is not None and args.method != "percentile":
            raise InputError("--percentile applies to --method percentile only")
        stage._fp32_onnx(bundle)  # refuse a bundle without model.onnx before building a calibration set
        if args.pte:
            from edge_se.quantize.pte_int8 import check_ready

            check_ready(bundle)  # ExecuTorch installed and model.pt2 present, before any calibration
        from edge_se.calibration.build import calibration_from

        kwargs = {}
        if args.percentile is not None:
            kwargs["percentile"] = args.percentile
        if args.weight_rounding is not None:
            kwargs["weight_rounding"] = args.weight_rounding
        if args.finetune_epochs is not None and (not args.finetune or not 1 <= args.finetune_epochs <= 1000):
            raise InputError("--finetune-epochs needs --finetune and a number of epochs between 1 and 1000")
        if args.max_memory is not None:
            from edge_se.quantize.memory import parse_size

            kwargs["max_memory"] = parse_size(args.max_memory)
        # the budget is checked (exit 2) before any calibration set is built
        stage._budget(args.policy or stage.DEFAULT_POLICY, args.max_drop, args.min_agreement, args.min_int8)
        cache_version = calibration_cache_version(args.trt_cache_version)  # 8.6.1 -> 8601 (the header's number)
        # a spec is built into a temporary folder removed afterwards; a set folder is read in place
        pre = bundle.preprocessing()
        with owned_tempdir("edge-se-calib-") as tmp:
            calib = calibration_from(args.calib, tmp, preprocessing=pre)
            evaluation = calibration_from(args.eval_set, tmp, preprocessing=pre) if args.eval_set else None
            stage.quantize_int8(
                bundle, calib, policy=args.policy or stage.DEFAULT_POLICY, method=args.method or stage.DEFAULT_METHOD,
                max_drop=args.max_drop, min_agreement=args.min_agreement, min_int8=args.min_int8, evaluation=evaluation, reduce_range=args.reduce_range,
                trt_version=cache_version, reference=reference_options(args), finetune=args.finetune,
                finetune_epochs=args.finetune_epochs, pte=args.pte, **kwargs,
            )
        added = [stage.TRT_ARTIFACT, stage.CPU_ARTIFACT, stage.CACHE_ARTIFACT]
        if args.pte:
            from edge_se.quantize.pte_int8 import PTE_INT8_ARTIFACT

            added.append(PTE_INT8_ARTIFACT)
    _print(bundle, added, args.json)
    return 0


def _print(bundle, added: list[str], as_json: bool) -> None:
    checks = [c for c in bundle.manifest["checks"] if c.get("artifact") in added]
    rows = []
    for c in checks:
        row = {"artifact": c["artifact"], "check": c["name"], "passed": c["passed"]}
        for k in ("agreement", "accuracy", "accuracy_drop", "sqnr_db"):
            if k in c:
                row[k] = round(c[k], 3)
        outs = c.get("outputs") or []
        if outs:
            row["cosine_min"] = round(min(o.get("cosine_min", 1.0) for o in outs), 6)
            row["max_abs"] = round(max(o.get("max_abs", 0.0) for o in outs), 5)
        rows.append(row)
    kept, share, budget = {}, {}, {}
    for name in added:
        d = bundle.record(name).decision
        if d is not None:
            kept[name] = list(d.kept_blocks)
            share[name] = d.int8_mac_share
            if d.budget_met is not None:
                budget[name] = {"met": d.budget_met, "misses": list(d.budget_misses), **d.budget}
    if as_json:
        print(json.dumps({"bundle": str(bundle.root), "added": added, "kept_in_float": kept, "int8_mac_share": share,
                          "budget": budget, "checks": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edge-se quantize: {bundle.root}")
    for col in ("artifact", "check", "passed", "metrics"):
        table.add_column(col)
    for r in rows:
        metrics = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("artifact", "check", "passed"))
        table.add_row(r["artifact"], r["check"], "yes" if r["passed"] else "NO", metrics)
    Console().print(table)
    for name, blocks in kept.items():
        macs = "" if share.get(name) is None else f" ({100 * share[name]:.1f} % of the MACs run in INT8)"
        b = budget.get(name)
        verdict = "" if b is None else ("; budget met" if b["met"] else "; budget missed: " + "; ".join(b["misses"]))
        print(f"{name}: kept in float: {', '.join(blocks) if blocks else 'nothing'}{macs}{verdict}")
