"""``report.md``: the summary table, one fidelity table per artifact, machine and tools."""

from __future__ import annotations

from typing import Any

from edge_se.report.tables import (Table, failure_lines, fidelity_table, key_value_table, reference_name, row_title,
                                   summary_table)


def md_table(table: Table) -> str:
    headers, rows = table

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], plot_name: str | None = "accuracy_vs_latency.png") -> str:
    model = report.get("model") or {}
    parts = [f"# Validation report: {model.get('spec', report.get('bundle', ''))}", ""]
    parts.append(f"Bundle `{report.get('bundle')}`, created {report.get('created')}. "
                 f"Inputs: {(report.get('data') or {}).get('description', '-')}.")
    ref = report.get("reference") or {}
    if ref.get("accuracy") is not None:
        parts.append(f"{reference_name(report)} FP32 reference accuracy: {100 * ref['accuracy']:.2f}%.")
    parts += ["", "## Accuracy, numerics and latency", "", md_table(summary_table(report)), ""]
    parts.append(f"Numerics compare each artifact's outputs with {reference_name(report)} FP32 under the precision's tolerance "
                 "(edge_se/reference/tolerances.py); latency is measured through the embedded runtime on this machine.")
    failures = failure_lines(report)
    if failures:
        parts += ["", "Failed or not measured:", ""] + [f"- {line}" for line in failures]
    if plot_name:
        parts += ["", f"![accuracy vs latency]({plot_name})", ""]
    parts += ["## Attention fidelity per block", "",
              "Gate tensors of every attention block, found by graph pattern and exposed as outputs of a debug copy "
              f"of each model, against the {'FP32 ONNX' if reference_name(report) != 'PyTorch' else 'PyTorch module'}'s gates. *Local* errors compare each gate with the FP32 "
              "gate computed from the same (deployed) block input, so they isolate the block that loses precision; "
              "the block with the largest local mean error is marked worst.", ""]
    for row in report.get("rows", []):
        fid = row.get("fidelity") or {}
        if not fid.get("blocks"):
            continue
        parts += [f"### {row_title(row)}", "", md_table(fidelity_table(row)), ""]
        for note in fid.get("notes", []):
            parts.append(f"- {note}")
    if report.get("notes"):
        parts += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    parts += ["## Machine and tools", "", md_table(key_value_table(report.get("machine") or {})), "",
              md_table(key_value_table(report.get("tools") or {})), ""]
    return "\n".join(parts)
