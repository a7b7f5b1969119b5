"""``accuracy_vs_latency.png``: one point per precision/policy/backend, the Pareto front drawn,
the FP32 reference marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edge_se.report.tables import reference_name

PRECISION_COLORS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "bf16": "#9467bd", "int8": "#d62728"}
#: marker edge (color, width) per backend, so ONNX Runtime and OpenVINO rows sit side by side distinguishably
BACKEND_EDGES = {"ov": ("#ff7f0e", 2.2)}
_EDGE = ("black", 0.6)
POLICY_MARKERS = {"-": "o", "all": "s", "keep-gates": "D", "auto": "^"}


def plot_points(report: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """(points, y-axis label): accuracy when the report has labels, else top-1 agreement with PyTorch."""
    rows = [r for r in report.get("rows", []) if not r.get("error")]
    use_acc = any(r.get("accuracy") is not None for r in rows)
    points = []
    for r in rows:
        lat = ((r.get("latency") or {}).get("1") or {}).get("p50_ms")
        if use_acc:
            y = r.get("accuracy")
        else:
            outs = (r.get("numerics") or {}).get("outputs") or [{}]
            y = outs[0].get("top1_agreement_all")
        if lat is None or y is None:
            continue
        points.append({"x": float(lat), "y": 100.0 * float(y), "precision": r["precision"], "policy": r["policy"],
                       "backend": r["backend"], "label": f"{r['precision']}/{r['policy']}/{r['backend']}"})
    label = "top-1 accuracy (%)" if use_acc else f"top-1 agreement with {reference_name(report)} (%)"
    return points, label


def pareto_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p["x"], -p["y"])):
        if p["y"] > best:
            front.append(p)
            best = p["y"]
    return front


#: label positions tried around a point (offset in points, horizontal alignment), first free wins
_LABEL_SLOTS = [((7, 6), "left"), ((7, -13), "left"), ((-7, 6), "right"), ((-7, -13), "right"),
                ((7, 18), "left"), ((7, -25), "left"), ((-7, 18), "right"), ((-7, -25), "right"),
                ((7, 30), "left"), ((7, -37), "left"), ((-7, 30), "right"), ((-7, -37), "right")]


def _place_labels(fig, ax, points: Sequence[dict[str, Any]]) -> None:
    """Annotate each point in the first slot whose text box overlaps no earlier label."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    placed = []
    for p in points:  # keep labels off the markers too
        cx, cy = ax.transData.transform((p["x"], p["y"]))
        placed.append(Bbox.from_extents(cx - 6, cy - 6, cx + 6, cy + 6))
    for p in sorted(points, key=lambda p: (p["x"], -p["y"])):
        for i, (offset, ha) in enumerate(_LABEL_SLOTS):
            text = ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points", xytext=offset,
                               fontsize=8, ha=ha, va="center",
                               arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 0, "shrinkB": 4})
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer).expanded(1.05, 1.15)  # the text, not its leader line
            if not any(box.overlaps(b) for b in placed) or i == len(_LABEL_SLOTS) - 1:
                placed.append(box)
                break
            text.remove()


def plot_accuracy_vs_latency(report: dict[str, Any], out: str | Path, title: str | None = None) -> Path | None:
    """Write the PNG; ``None`` (nothing written) when no row has both a latency and an accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, ylabel = plot_points(report)
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    front = pareto_front(points)
    xmax = max(p["x"] for p in points) * 1.35
    fx = [p["x"] for p in front] + [xmax]
    fy = [p["y"] for p in front] + [front[-1]["y"]]
    ax.step(fx, fy, where="post", color="0.45", lw=1.5, ls="--", zorder=1, label="Pareto front")
    for p in points:
        edge, width = BACKEND_EDGES.get(p["backend"], _EDGE)
        ax.scatter(p["x"], p["y"], s=70, zorder=3, color=PRECISION_COLORS.get(p["precision"], "0.3"),
                   marker=POLICY_MARKERS.get(p["policy"], "o"), edgecolor=edge, linewidth=width)
    ref = next((p for p in points if p["precision"] == "fp32"), None)
    if ref is not None:
        ax.scatter(ref["x"], ref["y"], s=320, marker="*", color="gold", edgecolor="black", zorder=4,
                   label=f"FP32 reference ({ref['backend']})")
    torch_acc = (report.get("reference") or {}).get("accuracy")
    if torch_acc is not None and "accuracy" in ylabel:
        ax.axhline(100 * torch_acc, color="#1f77b4", lw=1, ls=":", label=f"{reference_name(report)} FP32 {100 * torch_acc:.1f}%")
    for prec, color in PRECISION_COLORS.items():
        if any(p["precision"] == prec for p in points):
            ax.scatter([], [], color=color, marker="o", label=prec.upper())
    for pol, marker in POLICY_MARKERS.items():
        if pol != "-" and any(p["policy"] == pol for p in points):
            ax.scatter([], [], color="white", edgecolor="black", marker=marker, label=f"policy {pol}")
    for backend, (edge, width) in BACKEND_EDGES.items():
        if any(p["backend"] == backend for p in points):
            ax.scatter([], [], color="white", edgecolor=edge, linewidth=width, marker="o", label=f"backend {backend}")
    ys = [p["y"] for p in points] + ([100 * torch_acc] if torch_acc is not None and "accuracy" in ylabel else [])
    span = max(ys) - min(ys)
    pad = max(span * 0.15, 0.5)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("latency p50 at batch 1 (ms, lower is better)")
    ax.set_ylabel(ylabel)
    model = (report.get("model") or {}).get("spec") or ""
    ax.set_title(title or f"{model}: accuracy vs latency ({report.get('machine', {}).get('cpu', 'this machine')})",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    _place_labels(fig, ax, points)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_combined(reports: Sequence[dict[str, Any]], out: str | Path) -> Path | None:
    """One panel per model (benchmarks/zoo_matrix.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(rep, *plot_points(rep)) for rep in reports]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (rep, points, ylabel) in zip(axes.flat, panels):
        front = pareto_front(points)
        xmax = max(p["x"] for p in points) * 1.2
        ax.step([p["x"] for p in front] + [xmax], [p["y"] for p in front] + [front[-1]["y"]], where="post",
                color="0.45", ls="--", lw=1.2)
        for p in points:
            ax.scatter(p["x"], p["y"], s=45, color=PRECISION_COLORS.get(p["precision"], "0.3"),
                       marker=POLICY_MARKERS.get(p["policy"], "o"), edgecolor="black", linewidth=0.5, zorder=3)
            if p["precision"] == "fp32":
                ax.scatter(p["x"], p["y"], s=200, marker="*", color="gold", edgecolor="black", zorder=4)
        ax.set_title((rep.get("model") or {}).get("spec", "?"), fontsize=10)
        ax.set_xlabel("p50 ms (batch 1)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xlim(0, xmax)
        ax.grid(True, alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=k.upper()) for k, c in PRECISION_COLORS.items()]
    handles += [plt.Line2D([], [], color="white", markeredgecolor="black", marker=m, ls="", label=f"policy {k}")
                for k, m in POLICY_MARKERS.items() if k != "-"]
    handles.append(plt.Line2D([], [], color="gold", marker="*", markeredgecolor="black", ls="", markersize=12,
                              label="FP32 reference"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
