"""The validation matrix: arguments, data sources, and the digits nets' accuracy rows."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from edge_se.errors import InputError
from edge_se.commands._matrix_args import add_matrix_arguments, matrix_requested
from edge_se.validate.eval_data import labeled_images
from edge_se.validate.matrix import run_matrix


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--images")
    add_matrix_arguments(p)
    return p.parse_args(["b", *argv])


def test_plain_validate_does_not_run_the_matrix():
    assert not matrix_requested(_parse())
    for flags in (["--digits"], ["--precisions", "fp16"], ["--limit", "5"], ["--latency-seconds", "1"], ["--out", "r"]):
        assert matrix_requested(_parse(*flags)), flags


def test_flags_parse_into_lists():
    args = _parse("--precisions", "fp32,int8", "--policies", "keep-gates", "--batch-sizes", "1,16")
    assert args.precisions == ["fp32", "int8"] and args.policies == ["keep-gates"] and args.batch_sizes == [1, 16]


def test_unknown_precision_is_refused_before_any_work(matrix_report):
    report, _ = matrix_report
    with pytest.raises(InputError, match="--precisions"):
        run_matrix(report["bundle"], precisions=("int4",))


def test_labels_without_images_is_refused(matrix_report, tmp_path):
    report, _ = matrix_report
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(InputError, match="--labels and --ground-truth need --images"):
        run_matrix(report["bundle"], labels=labels, out=tmp_path / "r")


def test_digits_on_a_non_digits_bundle_is_refused(export_cached, tmp_path):
    bundle = export_cached("se_digits", (1, 1, 40, 40))  # a digits architecture, but not digits' input
    with pytest.raises(InputError, match="digits net"):
        run_matrix(bundle.root, digits=True, out=tmp_path / "r")


def test_precisions_and_batch_sizes_shape_the_report(matrix_report):
    report, _ = matrix_report
    assert {r["precision"] for r in report["rows"]} == {"fp32", "fp16", "int8"}
    assert all(set(r["latency"]) == {"1", "4"} for r in report["rows"])
    assert report["data"]["labels"] is False and all(r["accuracy"] is None for r in report["rows"])


def _write_class_folders(root, n_per_class=2):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(root / cls / f"{i}.png")


def test_class_subfolders_give_labels_in_sorted_order(tmp_path):
    from edge_se.data.digits import DIGITS_PREPROCESS

    _write_class_folders(tmp_path / "imgs")
    x, y, desc = labeled_images(tmp_path / "imgs", None, DIGITS_PREPROCESS, None)
    assert x.shape == (4, 1, 32, 32) and y.tolist() == [0, 0, 1, 1] and "sorted" in desc


def test_class_names_file_maps_subfolders_to_its_line_numbers(tmp_path):
    from edge_se.data.digits import DIGITS_PREPROCESS

    _write_class_folders(tmp_path / "imgs")
    names = tmp_path / "classes.txt"
    names.write_text("bird\ndog\ncat\n")
    _, y, _ = labeled_images(tmp_path / "imgs", names, DIGITS_PREPROCESS, None)
    assert y.tolist() == [2, 2, 1, 1]


def test_path_label_file_labels_listed_images_only(tmp_path):
    from edge_se.data.digits import DIGITS_PREPROCESS

    _write_class_folders(tmp_path / "imgs")
    pairs = tmp_path / "labels.csv"
    pairs.write_text("path,label\ncat/0.png,7\ndog/1.png,3\n")
    x, y, _ = labeled_images(tmp_path / "imgs", pairs, DIGITS_PREPROCESS, None)
    assert len(x) == 2 and y.tolist() == [7, 3]


@pytest.mark.slow
def test_trained_digits_net_rows_have_accuracy_latency_and_fidelity(tmp_path):
    from edge_se import progress
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    ckpt = cached_digits_checkpoint("eca")
    export_bundle("eca_digits", (1, 1, 32, 32), tmp_path / "bundle", checkpoint=ckpt)
    report = run_matrix(tmp_path / "bundle", digits=True, out=tmp_path / "report", limit=300,
                        latency_seconds=0.2, batch_sizes=(1, 8))
    rows = {(r["precision"], r["policy"]): r for r in report["rows"]}
    assert set(rows) == {("fp32", "-"), ("fp16", "-"), ("int8", "all"), ("int8", "keep-gates"), ("int8", "auto")}
    assert report["reference"]["accuracy"] > 0.5
    for r in rows.values():
        assert r["accuracy"] is not None and r["latency"]["8"]["throughput_per_s"] > 0
        assert len(r["fidelity"]["blocks"]) == 3
    assert rows[("fp32", "-")]["accuracy"] == pytest.approx(report["reference"]["accuracy"], abs=0.005)
    assert rows[("fp32", "-")]["numerics"]["passed"]


def test_validate_command_runs_the_matrix_and_leaves_the_bundle_unchanged(matrix_report, tmp_path):
    from pathlib import Path

    from edge_se.cli import main

    report, _ = matrix_report
    manifest = Path(report["bundle"]) / "manifest.json"
    files_before = sorted(p.name for p in Path(report["bundle"]).iterdir())
    out = tmp_path / "cli-report"
    code = main(["validate", report["bundle"], "--precisions", "fp32,int8", "--policies", "keep-gates",
                 "--limit", "4", "--latency-seconds", "0.1", "--batch-sizes", "1", "--out", str(out)])
    assert code == 0 and (out / "report.html").is_file()
    import json

    saved = json.loads((out / "report.json").read_text())
    assert [(r["precision"], r["policy"]) for r in saved["rows"]] == [("fp32", "-"), ("int8", "keep-gates")]
    assert sorted(p.name for p in Path(report["bundle"]).iterdir()) == files_before
    assert "model.int8.cpu.onnx" not in json.loads(manifest.read_text())["artifacts"]


def test_openvino_rows_sit_beside_onnxruntime_with_bf16_their_own(matrix_report, tmp_path):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    report, _ = matrix_report
    ov_report = run_matrix(report["bundle"], precisions=("fp32", "bf16", "int8"), policies=("all",),
                           backends=("ort", "ov"), out=tmp_path / "ov", batch_sizes=(1,), limit=16,
                           latency_seconds=0.1)
    rows = [r for r in ov_report["rows"] if not r.get("skipped")]
    keys = {(r["precision"], r["backend"]) for r in rows}
    assert {("fp32", "ort"), ("fp32", "ov"), ("int8", "ort"), ("int8", "ov")} <= keys
    assert ("bf16", "ort") not in keys  # BF16 is OpenVINO's
    for r in rows:
        assert r["numerics"]["passed"], (r["precision"], r["backend"], r["numerics"])
        assert r["runtime"]["backend"] == {"ort": "onnxruntime", "ov": "openvino"}[r["backend"]]
    bf16 = [r for r in ov_report["rows"] if r["precision"] == "bf16"]
    assert bf16 and all(r.get("skipped") or r["runtime"]["inference_precision"] == "bf16" for r in bf16)
    assert "| ov |" in (tmp_path / "ov" / "report.md").read_text()
    assert (tmp_path / "ov" / "accuracy_vs_latency.png").is_file()
