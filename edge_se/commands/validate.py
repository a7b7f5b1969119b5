"""``edge-se validate``: re-run a bundle's checks against the PyTorch reference."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "validate"
ORDER = 20
HELP = "re-run a bundle's numerical checks against PyTorch (exit 1 on failure)"
DESCRIPTION = (
    "Verify every artifact's sha256, rebuild the PyTorch reference from the manifest (model spec,\n"
    "checkpoint, seed), and re-run the numerical checks of each ONNX, TorchScript, torch.export,\n"
    "AOTInductor and ExecuTorch artifact (each on the backend that runs it) with its\n"
    "precision's tolerances (edge_se/reference/tolerances.py). Results are written back to the\n"
    "manifest. Exit 1 when any check fails, naming the output, the error and the tolerance.\n"
    "With --json: a summary of the checks (and of the matrix report, when one is asked for)."
)
EXAMPLES = """  edge-se validate bundles/se50
  edge-se validate bundles/se50 --images photos/ --json
  edge-se validate bundles/se50 --images val/ --ground-truth val/labels.csv --out report/"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--images", help="folder of real images (default: scikit-learn's sample images)")
    from edge_se.commands._reference_args import add_reference_arguments

    add_reference_arguments(p)
    from edge_se.commands._matrix_args import add_matrix_arguments

    add_matrix_arguments(p)
    g = p.add_argument_group("ground truth for --images")
    g.add_argument("--ground-truth", metavar="FILE",
                   help="'relative/path.jpg,<class index>' lines (comma or tab; a header line is skipped): the label "
                        "of each image of --images")


def is_ground_truth(path: str | Path) -> bool:
    """True when ``path`` holds ``relative/path,<class index>`` lines rather than class names."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t" if "\t" in line else ",")
        if len(parts) == 2 and parts[1].strip().lstrip("-").isdigit():
            return True
    return False


def _ground_truth(args: argparse.Namespace) -> None:
    """Map ``--ground-truth`` (and the old ``--labels path,index`` spelling) onto the matrix's labels."""
    from edge_se.commands._output import deprecated
    from edge_se.errors import InputError

    truth, labels = getattr(args, "ground_truth", None), getattr(args, "labels", None)
    if truth is not None:
        if labels is not None:
            raise InputError("--ground-truth gives each image its class index; drop --labels (class names), "
                             "or put the names in the bundle")
        if args.images is None:
            raise InputError("--ground-truth needs --images DIR (the images its lines name)")
        args.labels = truth
    elif labels is not None and is_ground_truth(labels):
        deprecated(f"--labels {labels} (image,class-index lines)", "--ground-truth FILE")


def run(args: argparse.Namespace) -> int:
    from edge_se import progress
    from edge_se.bundle import Bundle
    from edge_se.commands._reference_args import reference_options
    from edge_se.validate.artifacts import validate_bundle
    from edge_se.reference.check import failed_summary

    _ground_truth(args)
    bundle = Bundle.open(args.bundle)
    with bundle.writing(), progress.stage(f"Validating {bundle.root}"):
        checks = validate_bundle(bundle, images=args.images, reference=reference_options(args))
        bundle.save()
    failed = [c for c in checks if not c["passed"]]
    if not args.json:
        print(f"{len(checks) - len(failed)}/{len(checks)} checks passed for {bundle.root}")
        if failed:
            print(f"FAILED: {failed_summary(failed)}")
    matrix = None
    if getattr(args, "_matrix_requested", None) and args._matrix_requested(args):
        matrix = _run_matrix(args, bundle.root)
    if args.json:
        from edge_se.commands._output import emit_json

        emit_json(summary(bundle, checks, matrix))
    return 1 if failed or (matrix is not None and not matrix["passed"]) else 0


def _run_matrix(args: argparse.Namespace, root: Path) -> dict:
    """Run the accuracy-vs-latency matrix; its table goes to stdout, or to stderr with --json."""
    import contextlib
    import sys

    from edge_se.commands._matrix_args import run_matrix_from_args

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        passed = run_matrix_from_args(args)
    out = Path(args.out) if args.out else root / "report"
    return {"passed": bool(passed), "out": out}


def summary(bundle, checks: list[dict], matrix: dict | None) -> dict:
    """The ``--json`` document: what was checked, what passed, where the results are."""
    failed = [c for c in checks if not c["passed"]]
    doc = {
        "command": "validate", "ok": not failed and (matrix is None or matrix["passed"]),
        "bundle": str(bundle.root), "manifest": str(bundle.root / "manifest.json"),
        "checks": {"passed": len(checks) - len(failed), "total": len(checks)},
        "results": [{"artifact": c.get("artifact"), "check": c.get("name"), "passed": bool(c["passed"]),
                     **({"reason": c["reason"]} if not c["passed"] and c.get("reason") else {})} for c in checks],
        "matrix": None,
    }
    if matrix is not None:
        out = matrix["out"]
        files = {kind: str(out / name) for kind, name in (("json", "report.json"), ("markdown", "report.md"),
                 ("html", "report.html"), ("plot", "accuracy_vs_latency.png")) if (out / name).is_file()}
        rows = []
        if "json" in files:
            from edge_se.report.render import load_report

            rows = [{"precision": r.get("precision"), "policy": r.get("policy"), "backend": r.get("backend"),
                     "skipped": bool(r.get("skipped")), "numerics_passed": (r.get("numerics") or {}).get("passed"),
                     "accuracy": r.get("accuracy")} for r in load_report(out).get("rows", [])]
        doc["matrix"] = {"passed": matrix["passed"], "out": str(out), "files": files, "rows": rows}
    return doc
