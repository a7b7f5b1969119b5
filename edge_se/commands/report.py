"""``edge-se report DIR``: re-render report.md, report.html and the plot from DIR/report.json."""

from __future__ import annotations

import argparse

NAME = "report"
ORDER = 25
HELP = "re-render a validation report (Markdown, HTML, plot) from its report.json"
DESCRIPTION = (
    "Read DIR/report.json (written by 'edge-se validate BUNDLE --out DIR ...') and write\n"
    "report.md, report.html (self-contained) and accuracy_vs_latency.png again, into DIR or --out.\n"
    "The JSON is not changed: edit or merge it, then re-render."
)
EXAMPLES = """  edge-se report out/se_digits
  edge-se report out/se_digits --out /tmp/shareable
  edge-se report out/se_digits --json     (the files written, as JSON)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="report folder holding report.json (or the JSON file itself)")
    p.add_argument("--out", metavar="DIR", help="write the rendered files here instead (report.json is copied)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge_se.report.render import load_report, render_report

    report = load_report(args.dir)
    src = Path(args.dir) if Path(args.dir).is_dir() else Path(args.dir).parent
    out = Path(args.out) if args.out else src
    written = render_report(report, out, write_json=out.resolve() != src.resolve())
    if args.json:
        from edge_se.commands._output import emit_json

        emit_json({"command": "report", "ok": True, "source": str(src), "out": str(out),
                   "passed": report.get("passed"), "files": {kind: str(path) for kind, path in written.items()}})
        return 0
    for kind, path in written.items():
        print(f"{kind:9s} {path}")
    return 0
