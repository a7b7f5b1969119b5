"""The report's tables as plain rows of strings, shared by the Markdown and HTML renderers."""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

Table = Tuple[List[str], List[List[str]]]  # typing: evaluated at import (Python 3.8)


def fmt(value: Any, digits: int = 3, pct: bool = False) -> str:
    """A number for a table cell: ``-`` for missing, percentages with one decimal."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, (int, float)):
        if pct:
            return f"{100 * value:.1f}%"
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 10**6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return str(value)


def _pp(delta: float | None) -> str:
    return "-" if delta is None else f"{100 * delta:+.1f} pp"


def _lat(row: dict[str, Any], batch: int, key: str) -> Any:
    lat = (row.get("latency") or {}).get(str(batch))
    return None if not lat else lat.get(key)


def _main_output(row: dict[str, Any]) -> dict[str, Any]:
    outs = (row.get("numerics") or {}).get("outputs") or [{}]
    return outs[0]


def summary_table(report: dict[str, Any]) -> Table:
    """One row per precision/policy/backend: accuracy, agreement, numerics, latency, worst block."""
    batches = report.get("batch_sizes") or [1]
    big = max(batches)
    has_acc = any(r.get("accuracy") is not None for r in report.get("rows", []))
    has_share = any(r.get("int8_mac_share") is not None for r in report.get("rows", []))
    headers = ["precision", "policy", "backend"] + (["INT8 MACs"] if has_share else [])
    if has_acc:
        headers += ["accuracy", "Δ vs PyTorch"]
    headers += ["top-1 agree", "top-5 agree", "min cosine", "max abs err", "max rel err", "numerics",
                "p50 ms (b1)", "p99 ms (b1)", f"p50 ms (b{big})", f"img/s (b{big})", "worst gate block"]
    rows = []
    for r in report.get("rows", []):
        if r.get("error"):
            cells = [r["precision"], r["policy"], r["backend"]] + ["-"] * (len(headers) - 4) + [f"error: {r['error']}"]
            rows.append(cells)
            continue
        out = _main_output(r)
        cells = [r["precision"], r["policy"], r["backend"]]
        if has_share:
            share = r.get("int8_mac_share")
            cells.append("-" if share is None else f"{100 * share:.1f}%")
        if has_acc:
            cells += [fmt(r.get("accuracy"), pct=True), _pp(r.get("accuracy_drop"))]
        fid = r.get("fidelity") or {}
        cells += [
            fmt(out.get("top1_agreement_all"), pct=True),
            fmt(out.get("top5_agreement"), pct=True),
            fmt(out.get("cosine_min"), 5),
            fmt(out.get("max_abs"), 4),
            fmt(out.get("max_rel"), 3),
            fmt((r.get("numerics") or {}).get("passed")),
            fmt(_lat(r, 1, "p50_ms"), 3),
            fmt(_lat(r, 1, "p99_ms"), 3),
            fmt(_lat(r, big, "p50_ms"), 3),
            fmt(_lat(r, big, "throughput_per_s"), 1),
            fid.get("worst") or "-",
        ]
        rows.append(cells)
    return headers, rows


def fidelity_table(row: dict[str, Any]) -> Table:
    """One line per attention block of one artifact (the worst marked)."""
    fid = row.get("fidelity") or {}
    headers = ["block", "kind", "cosine (min)", "max err", "mean err", "top-k overlap", "SK argmax agree",
               "saturated (ref → got)", "local mean err", "local max err"]
    rows = []
    for b in fid.get("blocks", []):
        name = b["block"] + (" ◀ worst" if b["block"] == fid.get("worst") else "")
        sat = "-" if b.get("saturation") is None else f"{fmt(b.get('saturation_ref'), pct=True)} → {fmt(b.get('saturation'), pct=True)}"
        topk = "-" if b.get("topk_overlap") is None else f"{fmt(b['topk_overlap'], pct=True)} (k={b.get('topk_k')})"
        rows.append([
            name, b.get("kind", "-"), fmt(b.get("cosine_min"), 5), fmt(b.get("max_abs"), 4), fmt(b.get("mean_abs"), 4),
            topk, fmt(b.get("sk_argmax_agreement"), pct=True), sat,
            fmt(b.get("local_mean_abs"), 4), fmt(b.get("local_max_abs"), 4),
        ])
    return headers, rows


def key_value_table(items: dict[str, Any]) -> Table:
    return ["item", "value"], [[str(k), fmt(v) if not isinstance(v, (dict, list)) else str(v)] for k, v in items.items()]


def failure_lines(report: dict[str, Any]) -> list[str]:
    """One line per artifact that failed its numerics or could not be measured, with the reason."""
    lines = []
    for r in report.get("rows", []):
        if r.get("skipped"):
            continue
        if r.get("error"):
            lines.append(f"{row_title(r)}: {r['error']}")
        elif not (r.get("numerics") or {}).get("passed", True):
            lines.append(f"{row_title(r)}: {r['numerics'].get('reason') or 'failed'}")
    return lines


def reference_name(report: dict[str, Any]) -> str:
    """Who the report's reference is: "PyTorch", or "ONNX Runtime" for a bundle imported from ONNX."""
    return "ONNX Runtime" if (report.get("reference") or {}).get("backend") == "onnxruntime" else "PyTorch"


def row_title(row: dict[str, Any]) -> str:
    return f"{row['precision']} / {row['policy']} / {row['backend']}"


COMBINED_COLUMNS = ("precision", "policy", "backend", "INT8 MACs", "accuracy", "Δ vs PyTorch", "top-1 agree", "min cosine",
                    "numerics", "p50 ms (b1)", "img/s (b{big})", "worst gate block")


def combined_table(reports: Sequence[dict[str, Any]]) -> Table:
    """Several models' summaries in one compact table (benchmarks/zoo_matrix.py)."""
    big = max(max(rep.get("batch_sizes") or [1]) for rep in reports) if reports else 1
    wanted = [c.format(big=big) for c in COMBINED_COLUMNS]
    rows: list[list[str]] = []
    for rep in reports:
        h, rs = summary_table(rep)
        model = (rep.get("model") or {}).get("spec") or rep.get("bundle", "?")
        for r in rs:
            cells = dict(zip(h, r))
            rows.append([model] + [cells.get(c, "-") for c in wanted])
    return ["model"] + wanted, rows
