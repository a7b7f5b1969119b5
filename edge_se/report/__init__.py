"""Validation reports: ``report.json`` (all numbers), ``report.md``, ``report.html`` and
``accuracy_vs_latency.png``, rendered from one JSON document (:func:`render_report`)."""

from edge_se.report.render import load_report, render_report

__all__ = ["load_report", "render_report"]
