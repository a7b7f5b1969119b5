"""Command-line options that say how a bundle's PyTorch reference may be rebuilt (shared by stages)."""

from __future__ import annotations

import argparse


def add_reference_arguments(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--reference-checkpoint`` and ``--trust-bundle-code`` (see docs/security.md)."""
    g = p.add_argument_group("PyTorch reference (a bundle is data: nothing it names is imported)")
    g.add_argument("--model", dest="reference_model", metavar="FILE.py:FACTORY",
                   help="the model file this bundle was exported from, given again (checked against the sha256 "
                   "the manifest recorded); needed for bundles made from a user file")
    g.add_argument("--reference-checkpoint", metavar="FILE",
                   help="the checkpoint the bundle was exported with (default: the path the manifest recorded; "
                   "sha256-checked, loaded weights-only)")
    g.add_argument("--trust-bundle-code", action="store_true",
                   help="import the user model file the manifest names (its code runs on this machine)")


def reference_options(args: argparse.Namespace):
    """The :class:`~edge_se.reference.rebuild.ReferenceOptions` the parsed flags ask for."""
    from edge_se.reference.rebuild import ReferenceOptions

    return ReferenceOptions(model=getattr(args, "reference_model", None),
                            checkpoint=getattr(args, "reference_checkpoint", None),
                            trust_bundle_code=bool(getattr(args, "trust_bundle_code", False)))
