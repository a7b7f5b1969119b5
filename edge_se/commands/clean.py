"""``edge-se clean``: finish an interrupted publish and remove what killed runs left behind."""

from __future__ import annotations

import argparse

NAME = "clean"
ORDER = 85
HELP = "remove staging and temporary files that killed edge-se runs left in and beside a bundle"
DESCRIPTION = (
    "Every writing stage already cleans up after a killed run of itself when it starts; this\n"
    "command does it on demand. It finishes a publish step a killed stage left half done (from its\n"
    "journal), then removes edge-se's own temporary entries whose owning process is gone: staging\n"
    "folders in and beside BUNDLE, half-written files, and edge-se's folders in the system temp\n"
    "folder. Nothing edge-se did not make is touched; entries of a run still going are kept."
)
EXAMPLES = """  edge-se clean bundles/se50"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder")


def run(args: argparse.Namespace) -> int:
    from edge_se.bundle import Bundle, clean_bundle

    bundle = Bundle.open(args.bundle)
    done = clean_bundle(bundle.root)
    if args.json:
        from edge_se.commands._output import emit_json

        emit_json({"command": "clean", "ok": True, "bundle": str(bundle.root), "handled": list(done)})
        return 0
    for line in done:
        print(line)
    print(f"{bundle.root}: clean ({len(done)} {'entry' if len(done) == 1 else 'entries'} handled)")
    return 0
