"""The accuracy-vs-latency matrix flags of ``edge-se validate`` and the run from parsed flags
(the library half is :mod:`edge_se.validate.matrix`)."""

from __future__ import annotations

import argparse

from edge_se.runtime.cli_args import split_csv
from edge_se.validate.matrix import BACKENDS, POLICIES, PRECISIONS, run_matrix


MATRIX_FLAGS = ("out", "digits", "labels", "precisions", "policies", "backends", "batch_sizes", "limit",
                "latency_seconds", "threads")
DEFAULT_LATENCY_SECONDS = 2.0


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in split_csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def matrix_requested(args: argparse.Namespace) -> bool:
    """True when any matrix flag was given (plain ``edge-se validate BUNDLE`` re-runs the checks only)."""
    return any(getattr(args, f, None) not in (None, False) for f in MATRIX_FLAGS)


def add_matrix_arguments(parser: argparse.ArgumentParser) -> None:
    """The matrix flags of ``edge-se validate`` (``--images`` is the command's own)."""
    g = parser.add_argument_group("accuracy-vs-latency matrix (any of these runs it and writes the report)")
    g.add_argument("--labels", metavar="FILE",
                   help="class names, one per line, as 'edge-se export --labels' takes (default: the bundle's): "
                        "the class index of each sub-folder of --images")
    g.add_argument("--digits", action="store_true", help="measure accuracy on digits-hard (the digits nets)")
    g.add_argument("--precisions", type=split_csv, metavar="LIST", help=f"subset of {','.join(PRECISIONS)} (default: all)")
    g.add_argument("--policies", type=split_csv, metavar="LIST",
                   help=f"INT8 precision policies, subset of {','.join(POLICIES)} (default: all); a file the "
                        "bundle lacks is made by the quantize stage with its defaults, in the report folder")
    g.add_argument("--backends", type=split_csv, metavar="LIST",
                   help=f"subset of {','.join(BACKENDS)} (default: ort; ov is OpenVINO, which adds bf16 rows)")
    g.add_argument("--out", metavar="DIR", help="report folder (default: BUNDLE/report)")
    g.add_argument("--batch-sizes", type=_ints, metavar="LIST", help="latency batch sizes (default: 1,8)")
    g.add_argument("--limit", type=int, metavar="N", help="measure on the first N images (digits default 2000)")
    g.add_argument("--latency-seconds", type=float, metavar="S",
                   help=f"seconds of timing per artifact and batch size (default {DEFAULT_LATENCY_SECONDS:g})")
    g.add_argument("--threads", type=int, metavar="N", help="runtime intra-op threads (default: the runtime's)")
    parser.set_defaults(_matrix_requested=matrix_requested)


def run_matrix_from_args(args: argparse.Namespace) -> bool:
    """Run the matrix from parsed flags, print the table and the report's paths; True if all passed."""
    from edge_se.commands._reference_args import reference_options
    from edge_se.report.markdown import md_table
    from edge_se.report.tables import summary_table

    report = run_matrix(
        args.bundle,
        images=getattr(args, "images", None),
        labels=args.labels,
        digits=args.digits,
        precisions=args.precisions or PRECISIONS,
        policies=args.policies or POLICIES,
        backends=args.backends or ("ort",),
        out=args.out,
        batch_sizes=args.batch_sizes or (1, 8),
        limit=args.limit,
        latency_seconds=args.latency_seconds if args.latency_seconds is not None else DEFAULT_LATENCY_SECONDS,
        threads=args.threads,
        reference=reference_options(args),
    )
    print(md_table(summary_table(report)))
    print(f"report: {report['files'].get('html')} (also report.md, report.json"
          f"{', accuracy_vs_latency.png' if 'plot' in report['files'] else ''})")
    failed = [f"{r['precision']}/{r['policy']}/{r['backend']}" for r in report["rows"]
              if not r.get("skipped") and not (r.get("numerics") or {}).get("passed")]
    if failed:
        print(f"FAILED numerics: {', '.join(failed)}")
    return report["passed"]
