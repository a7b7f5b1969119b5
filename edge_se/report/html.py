"""``report.html``: self-contained (inline CSS, the plot embedded as base64), no network."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from edge_se.report.tables import (Table, failure_lines, fidelity_table, key_value_table, reference_name, row_title,
                                   summary_table)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px;margin-top:20px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f3f7;white-space:normal;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
tr.fail td{background:#fdecea}td.worst{font-weight:bold;color:#b00020}
.muted{color:#666;font-size:13px}img{max-width:100%;border:1px solid #ddd}
"""


def html_table(table: Table, fail_column: str | None = None) -> str:
    headers, rows = table
    col = headers.index(fail_column) if fail_column in headers else None
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cls = ' class="fail"' if col is not None and row[col] == "FAIL" else ""
        cells = []
        for c in row:
            klass = ' class="worst"' if c.endswith("◀ worst") else ""
            cells.append(f"<td{klass}>{html.escape(c)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(report: dict[str, Any], plot_path: str | Path | None = None) -> str:
    model = report.get("model") or {}
    title = f"Validation report: {model.get('spec', report.get('bundle', ''))}"
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class='muted'>Bundle {html.escape(str(report.get('bundle')))}, created "
            f"{html.escape(str(report.get('created')))}. Inputs: "
            f"{html.escape(str((report.get('data') or {}).get('description', '-')))}.</p>"]
    ref = report.get("reference") or {}
    if ref.get("accuracy") is not None:
        body.append(f"<p>{reference_name(report)} FP32 reference accuracy: <b>{100 * ref['accuracy']:.2f}%</b></p>")
    body += ["<h2>Accuracy, numerics and latency</h2>", html_table(summary_table(report), "numerics")]
    failures = failure_lines(report)
    if failures:
        body += ["<p>Failed or not measured:</p>", "<ul>"] + [f"<li>{html.escape(f)}</li>" for f in failures] + ["</ul>"]
    if plot_path is not None and Path(plot_path).is_file():
        data = base64.b64encode(Path(plot_path).read_bytes()).decode("ascii")
        body += ["<h2>Accuracy vs latency</h2>", f'<img alt="accuracy vs latency" src="data:image/png;base64,{data}">']
    body.append("<h2>Attention fidelity per block</h2>")
    body.append("<p class='muted'>Gate tensors found by graph pattern, exposed on a debug copy of each model, "
                f"against the {'FP32 ONNX' if reference_name(report) != 'PyTorch' else 'PyTorch module'}'s gates. Local errors compare each gate with the FP32 gate computed "
                "from the same deployed block input; the worst block is marked.</p>")
    for row in report.get("rows", []):
        fid = row.get("fidelity") or {}
        if not fid.get("blocks"):
            continue
        body += [f"<h3>{html.escape(row_title(row))}</h3>", html_table(fidelity_table(row))]
        body += [f"<p class='muted'>{html.escape(n)}</p>" for n in fid.get("notes", [])]
    if report.get("notes"):
        body += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{html.escape(n)}</li>" for n in report["notes"]] + ["</ul>"]
    body += ["<h2>Machine and tools</h2>", html_table(key_value_table(report.get("machine") or {})),
             html_table(key_value_table(report.get("tools") or {}))]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
