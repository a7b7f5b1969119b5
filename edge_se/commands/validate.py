"""``edge-se validate``: re-run a bundle's checks against the PyTorch reference."""

from __future__ import annotations

import argparse

NAME = "validate"
ORDER = 20
HELP = "re-run a bundle's numerical checks against PyTorch (exit 1 on failure)"
DESCRIPTION = (
    "Verify every artifact's sha256, rebuild the PyTorch reference from the manifest (model spec,\n"
    "checkpoint, seed), and re-run the numerical checks of each ONNX, TorchScript, torch.export,\n"
    "AOTInductor and ExecuTorch artifact (each on the backend that runs it) with its\n"
    "precision's tolerances (edge_se/validate/tolerances.py). Results are written back to the\n"
    "manifest. Exit 1 when any check fails, naming the output, the error and the tolerance."
)
EXAMPLES = """  edge-se validate bundles/se50
  edge-se validate bundles/se50 --images photos/"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--images", help="folder of real images (default: scikit-learn's sample images)")
    from edge_se.commands._reference_args import add_reference_arguments

    add_reference_arguments(p)
    try:
        from edge_se.validate.matrix import add_matrix_arguments
    except ImportError:
        return
    add_matrix_arguments(p)


def run(args: argparse.Namespace) -> int:
    from edge_se import progress
    from edge_se.bundle import Bundle
    from edge_se.commands._reference_args import reference_options
    from edge_se.validate.artifacts import validate_bundle
    from edge_se.validate.check import failed_summary

    bundle = Bundle.open(args.bundle)
    with bundle.writing(), progress.stage(f"Validating {bundle.root}"):
        checks = validate_bundle(bundle, images=args.images, reference=reference_options(args))
        bundle.save()
    failed = [c for c in checks if not c["passed"]]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed for {bundle.root}")
    if failed:
        print(f"FAILED: {failed_summary(failed)}")
    matrix_failed = False
    if getattr(args, "_matrix_requested", None) and args._matrix_requested(args):
        from edge_se.validate.matrix import run_matrix_from_args

        matrix_failed = not run_matrix_from_args(args)
    return 1 if failed or matrix_failed else 0
