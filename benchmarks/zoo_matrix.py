"""The validation matrix over the zoo: every digits net (trained, on digits-hard) and se_resnet50.

For each model: export a bundle, then ``run_matrix`` (FP32 / FP16 / INT8 x policies all,
keep-gates, auto on ONNX Runtime CPU) with accuracy, latency at batch 1 and 8, and per-block
attention fidelity. Writes each model's report under ``OUT/<model>/`` and one combined table
(``OUT/zoo_matrix.md``, ``OUT/zoo_matrix.json``) and plot (``OUT/zoo_matrix.png``).

The digits nets are trained once and cached (``edge_se.data.cache``). se_resnet50 has no trained
weights here (nothing is downloaded): it is measured with its seeded initialisation on
scikit-learn's sample photos, so it reports numerics, latency and fidelity, not accuracy.

    python benchmarks/zoo_matrix.py --out out/zoo_matrix                   # the full run
    python benchmarks/zoo_matrix.py --models se_digits cbam_digits --limit 300 --latency-seconds 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DIGITS = ("se_digits", "cbam_digits", "bam_digits", "sk_digits", "simam_digits", "eca_digits")
MODELS = DIGITS + ("se_resnet50",)


def bundle_for(model: str, root: Path):
    """Export (or reuse) ``root/<model>/bundle``; digits nets with their trained checkpoint."""
    from edge_se.bundle import Bundle
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.errors import BundleError
    from edge_se.export.pipeline import export_bundle

    out = root / model / "bundle"
    try:
        return Bundle.open(out)
    except BundleError:
        pass
    if model in DIGITS:
        ckpt = cached_digits_checkpoint(model.removesuffix("_digits"))
        return export_bundle(model, (1, 1, 32, 32), out, checkpoint=ckpt, force=True)
    return export_bundle(model, (1, 3, 224, 224), out, force=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--out", default="out/zoo_matrix", help="output folder (default out/zoo_matrix)")
    ap.add_argument("--limit", type=int, default=None, help="digits-hard samples per net (default 2000)")
    ap.add_argument("--latency-seconds", type=float, default=3.0, help="timing per artifact and batch size")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    ap.add_argument("--policies", nargs="+", default=["all", "keep-gates", "auto"], help="INT8 policies, digits nets")
    ap.add_argument("--resnet-policies", nargs="+", default=["all", "keep-gates"],
                    help="INT8 policies for se_resnet50 (auto quantizes and runs the model once per candidate "
                         "block, slow on a small CPU, so it is opt-in here)")
    args = ap.parse_args(argv)

    from edge_se import progress
    from edge_se.report.machine import machine_info
    from edge_se.report.markdown import md_table
    from edge_se.report.plot import plot_combined
    from edge_se.report.tables import combined_table
    from edge_se.validate.matrix import run_matrix

    progress.set_quiet(True)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    reports = []
    t0 = time.perf_counter()
    for model in args.models:
        t = time.perf_counter()
        bundle = bundle_for(model, root)
        report = run_matrix(
            bundle.root, digits=model in DIGITS, out=root / model / "report",
            policies=args.policies if model in DIGITS else args.resnet_policies,
            limit=args.limit if model in DIGITS else 8, latency_seconds=args.latency_seconds, threads=args.threads,
            batch_sizes=(1, 8),
        )
        reports.append(report)
        print(f"{model}: {len(report['rows'])} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    table = md_table(combined_table(reports))
    machine = machine_info()
    cmd = "python benchmarks/zoo_matrix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"Machine: {machine['cpu']}, {machine.get('usable_cores', machine['logical_cores'])} usable cores, "
              f"{machine.get('memory_gib', '?')} GiB, {machine['os']}; command: `{cmd.strip()}`; "
              f"{time.perf_counter() - t0:.0f} s in all.")
    (root / "zoo_matrix.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    (root / "zoo_matrix.json").write_text(json.dumps({"machine": machine, "command": cmd, "reports": reports},
                                                      indent=2, default=str), encoding="utf-8")
    plot_combined(reports, root / "zoo_matrix.png")
    print(header)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
