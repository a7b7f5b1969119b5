"""Write the four report files from one report dict (and re-render them from ``report.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_se.bundle import atomic_write_json, atomic_write_text, read_json_document
from edge_se.errors import InputError

REPORT_FORMAT = "edge-se-validation-report"
FILES = ("report.json", "report.md", "report.html", "accuracy_vs_latency.png")


def load_report(folder: str | Path) -> dict[str, Any]:
    """The ``report.json`` of ``folder`` (or a path to the JSON itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise InputError(f"expected a report folder with report.json, found no {path}; run 'edge-se validate BUNDLE --out DIR' first")
    return read_json_document(path, REPORT_FORMAT, InputError, "an edge-se validation report",
                              "re-run 'edge-se validate BUNDLE --out DIR' to write it again")


def render_report(report: dict[str, Any], out_dir: str | Path, *, write_json: bool = True) -> dict[str, Path]:
    """Write report.json (unless ``write_json`` is False), report.md, report.html and the plot."""
    from edge_se.report.html import render_html
    from edge_se.report.markdown import render_markdown
    from edge_se.report.plot import plot_accuracy_vs_latency

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if write_json:
        atomic_write_json(out / "report.json", report)
        written["json"] = out / "report.json"
    png = plot_accuracy_vs_latency(report, out / "accuracy_vs_latency.png")
    if png is not None:
        written["plot"] = png
    atomic_write_text(out / "report.md", render_markdown(report, png.name if png else None))
    written["markdown"] = out / "report.md"
    atomic_write_text(out / "report.html", render_html(report, png))
    written["html"] = out / "report.html"
    return written
