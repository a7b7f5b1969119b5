"""Report files: JSON with every number, Markdown, self-contained HTML, the plot; re-rendering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from edge_se.report.plot import pareto_front
from edge_se.report.render import load_report

ROOT = Path(__file__).resolve().parents[2]


def test_all_four_files_are_written(matrix_report):
    _, out = matrix_report
    for name in ("report.json", "report.md", "report.html", "accuracy_vs_latency.png"):
        assert (out / name).is_file(), name
    with Image.open(out / "accuracy_vs_latency.png") as im:
        assert im.size[0] >= 800 and im.size[1] >= 500


def test_json_holds_rows_machine_and_tool_versions(matrix_report):
    report, out = matrix_report
    saved = json.loads((out / "report.json").read_text())
    assert [(r["precision"], r["policy"]) for r in saved["rows"]] == [
        ("fp32", "-"), ("fp16", "-"), ("int8", "all"), ("int8", "keep-gates")]
    assert saved["machine"]["logical_cores"] >= 1 and "onnxruntime" in saved["tools"]
    row = saved["rows"][0]
    assert set(row["latency"]) == {"1", "4"} and row["latency"]["1"]["p99_ms"] >= row["latency"]["1"]["p50_ms"]
    assert len(row["fidelity"]["blocks"]) == 5
    shares = {r["policy"]: r.get("int8_mac_share") for r in saved["rows"] if r["precision"] == "int8"}
    assert shares["all"] == 1.0 and 0.9 < shares["keep-gates"] < 1.0  # the SE gates are a sliver of the MACs


def test_markdown_shows_every_row_and_a_fidelity_table_each(matrix_report):
    _, out = matrix_report
    md = (out / "report.md").read_text()
    assert "| int8 | keep-gates | ort | 99.8% |" in md and "| fp16 | - | ort | - |" in md
    assert md.count("### ") == 4 and "blocks.4.attn" in md


def test_html_is_self_contained(matrix_report):
    _, out = matrix_report
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html


def test_report_command_rerenders_from_the_json(matrix_report, tmp_path):
    from edge_se.cli import main

    _, out = matrix_report
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "report.json", copy / "report.json")
    before = (copy / "report.json").read_bytes()
    assert main(["report", str(copy)]) == 0
    assert {p.name for p in copy.iterdir()} == {"report.json", "report.md", "report.html", "accuracy_vs_latency.png"}
    assert (copy / "report.json").read_bytes() == before
    assert (copy / "report.md").read_text() == (out / "report.md").read_text()


def test_report_command_refuses_a_folder_without_report_json(tmp_path):
    from edge_se.errors import InputError

    with pytest.raises(InputError, match="report.json"):
        load_report(tmp_path)


def test_pareto_front_keeps_only_undominated_points():
    pts = [{"x": 1.0, "y": 90.0}, {"x": 2.0, "y": 95.0}, {"x": 3.0, "y": 94.0}, {"x": 0.5, "y": 80.0}]
    assert [(p["x"], p["y"]) for p in pareto_front(pts)] == [(0.5, 80.0), (1.0, 90.0), (2.0, 95.0)]


def test_html_renders_in_headless_chromium(matrix_report, tmp_path):
    if not any(shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("Chromium is not installed (apt-get install -y chromium); scripts/screenshot_report.sh needs it")
    _, out = matrix_report
    shot = tmp_path / "shot.png"
    subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"), str(out), str(shot)], check=True, timeout=120,
                   capture_output=True)
    with Image.open(shot) as im:
        assert im.size == (1400, 2000)
        colors = im.convert("RGB").resize((140, 200)).getcolors(140 * 200)
    assert colors is not None and len(colors) > 20  # not a blank page: tables and the plot are drawn
