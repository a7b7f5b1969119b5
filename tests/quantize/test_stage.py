"""The quantize stage and `edge-se quantize`: manifest records, bad inputs, nothing partial left behind."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from edge_se.bundle import Bundle
from edge_se.cli import main
from edge_se.errors import CalibrationError

DIGITS_SPEC = Path(__file__).resolve().parents[2] / "calibration" / "digits.toml"


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_int8_manifest_records_policy_calibration_kept_nodes_and_checks(se_int8_bundle, small_calib):
    m = se_int8_bundle.manifest
    for name in ("model.int8.trt.onnx", "model.int8.cpu.onnx"):
        rec = m["artifacts"][name]
        assert rec["precision"] == "int8" and rec["policy"] == "all"
        choice = rec["calibration"]["method_choice"]  # --method auto: measured for each file
        assert rec["calibration"]["method"] == choice["chosen"] in {"minmax", "mse", "percentile 99.999"}
        assert set(choice["sqnr_db"]) == {"minmax", "mse", "percentile 99.999"}
        assert choice["sqnr_db"][choice["chosen"]] == max(choice["sqnr_db"].values())
        assert rec["calibration"]["set_sha256"] == small_calib.sha256
        assert rec["calibration"]["count"] == 32
        assert rec["kept_in_float"]["kept_nodes"] == []
        assert rec["kept_in_float"]["gates_found"] == 5
        assert rec["kept_in_float"]["int8_mac_share"] == 1.0
        assert rec["weights"]["rounding"] == "gptq" and rec["weights"]["layers_rounded"] == 28
        checks = [c for c in m["checks"] if c["artifact"] == name]
        assert {c["name"] for c in checks} >= {"numerics/eval/batch1", "numerics/eval/batch4", "accuracy"}
    cache = m["artifacts"]["model.int8.calib.cache"]
    assert cache["header"] == "TRT-8601-EntropyCalibration2"
    assert [f["path"] for f in cache["files"]] == ["model.int8.calib.cache", "model.int8.ranges.json"]
    for name in m["artifacts"]:
        se_int8_bundle.verify(name)


def test_cli_int8_with_keep_gates_lists_the_kept_gates(export_cached, copy_bundle, capsys, tmp_path, monkeypatch):
    import tempfile

    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    code = main(["-q", "quantize", str(bundle.root), "--precision", "int8", "--calib", str(DIGITS_SPEC),
                 "--policy", "keep-gates", "--method", "percentile", "--percentile", "99.9", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kept_in_float"]["model.int8.cpu.onnx"] == [f"blocks.{i}.attn" for i in range(5)]
    assert 0.99 < out["int8_mac_share"]["model.int8.cpu.onnx"] < 1.0
    rec = Bundle.open(bundle.root).artifact("model.int8.trt.onnx")
    assert rec["policy"] == "keep-gates"
    assert rec["calibration"]["method"] == "percentile" and rec["calibration"]["params"] == {"percentile": 99.9}
    assert len(rec["kept_in_float"]["kept_nodes"]) == 35
    assert rec["calibration"]["spec"]["path"] == str(DIGITS_SPEC) and len(rec["calibration"]["spec"]["sha256"]) == 64
    assert list(scratch.iterdir()) == []  # the calibration set built from the spec was removed


def test_auto_decides_for_each_flavour_on_its_own_model(export_cached, copy_bundle, small_calib):
    from edge_se.quantize.stage import quantize_int8

    # --min-agreement 100: any changed prediction on the 32 selection samples is a miss, so both
    # files go through the sensitivity probes
    bundle = quantize_int8(copy_bundle(export_cached("cbam_digits", (1, 1, 32, 32))), small_calib, policy="auto",
                           min_agreement=100.0, weight_rounding="nearest")
    recs = {n: bundle.artifact(n)["kept_in_float"] for n in ("model.int8.trt.onnx", "model.int8.cpu.onnx")}
    for name, rec in recs.items():
        assert bundle.artifact(name)["weights"]["rounding"] == "nearest"
        assert rec["budget"] == {"max_drop": 0.1, "min_agreement": 100.0, "min_int8": 0.95, "confidence": 0.95}
        assert rec["int8_mac_share"] >= 0.95
        first = rec["steps"][0]
        assert first["kept_count"] == 0 and first["int8_mac_share"] == 1.0
        assert rec["budget_met"] == rec["steps"][-1]["met"] or not rec["budget_met"]
    measured = [r for r in recs.values() if r["sensitivity"]]
    if len(measured) == 2:  # measured on two different models: the CPU file quantizes every op
        cpu, trt = (r["sensitivity"] for r in (recs["model.int8.cpu.onnx"], recs["model.int8.trt.onnx"]))
        assert [s["sqnr_db"] for s in cpu] != [s["sqnr_db"] for s in trt]


def test_auto_says_what_it_chose_and_when_the_set_cannot_resolve_the_budget(export_cached, copy_bundle,
                                                                            small_calib, monkeypatch, capsys):
    from edge_se import progress
    from edge_se.quantize import stage

    monkeypatch.setattr(progress, "_silenced", False)
    with progress.cli_output():  # the command line's stderr handler on the edge_se logger
        bundle = stage.quantize_int8(copy_bundle(export_cached("bam_digits", (1, 1, 32, 32))), small_calib,
                                     policy="auto", min_agreement=0.0, max_drop=100.0, weight_rounding="nearest")
        err = " ".join(capsys.readouterr().err.split())
        assert "cannot resolve this budget" not in err  # a budget of 0 % agreement needs no samples
        assert "policy auto for model.int8.cpu.onnx: 0 block(s) in float, 100.0 % of the multiply-accumulates in INT8" in err
        stage.quantize_int8(bundle, small_calib, policy="auto", weight_rounding="nearest")
        err = " ".join(capsys.readouterr().err.split())
    needed = math.ceil(-math.log(0.05) / 0.001)  # max-drop 0.1 points is the tightest allowance
    assert f"32 samples cannot resolve this budget (it takes {needed} " in err
    assert f"pass --eval with at least {needed} samples" in err


def test_cli_fp16_adds_a_validated_artifact(export_cached, copy_bundle):
    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    assert main(["-q", "quantize", str(bundle.root), "--precision", "fp16"]) == 0
    b = Bundle.open(bundle.root)
    b.verify("model.fp16.onnx")
    assert b.artifact("model.fp16.onnx")["fp16"]["fp32_op_types"]
    checks = [c for c in b.manifest["checks"] if c["artifact"] == "model.fp16.onnx"]
    assert len(checks) == 4 and all(c["passed"] and c["precision"] == "fp16" for c in checks)
    assert checks[0]["reference"].startswith("PyTorch")


def test_bundle_without_fp32_onnx_is_refused(tmp_path, capsys):
    b = Bundle.new(tmp_path / "b", model={"spec": "se_digits", "input_shape": [1, 1, 32, 32]})
    b.root.mkdir()
    b.save()
    before = _files(b.root)
    assert main(["quantize", str(b.root), "--precision", "fp16"]) == 2
    assert "no FP32 ONNX artifact 'model.onnx'" in capsys.readouterr().err
    assert main(["quantize", str(b.root), "--precision", "int8", "--calib", str(DIGITS_SPEC)]) == 2
    assert _files(b.root) == before


def test_calibration_set_of_another_shape_is_refused_and_nothing_is_written(export_cached, copy_bundle, tmp_path):
    from edge_se.calibration.build import calibration_from
    from edge_se.calibration.spec import load_spec
    from edge_se.quantize.stage import quantize_int8

    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    before = _files(bundle.root)
    rgb = calibration_from(load_spec(DIGITS_SPEC.parent / "sample-images.toml").with_count(4), tmp_path / "c")
    with pytest.raises(CalibrationError, match="shape"):
        quantize_int8(bundle, rgb)
    assert _files(bundle.root) == before


def test_calibration_set_with_other_preprocessing_is_refused(export_cached, copy_bundle, tmp_path):
    from edge_se.calibration.build import calibration_from

    spec = tmp_path / "digits-mean.toml"
    spec.write_text(DIGITS_SPEC.read_text().replace("mean = [0.5]", "mean = [0.4]"))
    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    before = _files(bundle.root)
    code = main(["quantize", str(bundle.root), "--precision", "int8", "--calib", str(spec)])
    assert code == 2
    assert _files(bundle.root) == before
    with pytest.raises(CalibrationError, match="mean"):
        from edge_se.quantize.stage import quantize_int8

        quantize_int8(bundle, calibration_from(spec, tmp_path / "c"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--precision", "int8"], "needs --calib"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--policy", "all", "--max-drop", "0.5"], "auto only"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--percentile", "99.9"], "--method percentile only"),
        (["--precision", "fp16", "--policy", "all"], "--policy only apply to --precision int8"),
        (["--precision", "fp16", "--weight-rounding", "nearest"], "--weight-rounding only apply to --precision int8"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--policy", "all", "--min-int8", "0.9"], "auto only"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--min-int8", "1.5"], "--min-int8 must be a number"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--min-agreement", "nan"], "--min-agreement must be"),
        (["--precision", "int8", "--calib", str(DIGITS_SPEC), "--max-memory", "lots"], "--max-memory 'lots' is not a size"),
        (["--precision", "fp16", "--max-memory", "4G"], "--max-memory only apply to --precision int8"),
    ],
)
def test_inconsistent_options_are_refused(export_cached, copy_bundle, capsys, argv, message):
    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    before = _files(bundle.root)
    assert main(["quantize", str(bundle.root), *argv]) == 2
    assert message in capsys.readouterr().err
    assert _files(bundle.root) == before


def test_failed_fp16_validation_exits_1_and_leaves_no_artifact(tmp_path, capsys):
    """A model whose logits exceed FP16's range (65504) overflows to inf in FP16: the check fails."""
    from edge_se.export.pipeline import export_bundle

    src = tmp_path / "huge.py"
    src.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build():
            torch.manual_seed(0)
            fc = nn.Linear(3, 4)
            with torch.no_grad():
                fc.weight.fill_(10.0)
                fc.bias.fill_(1.0e5)  # logits around 1e5: finite in FP32, inf in FP16
            return nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)
    """))
    bundle = export_bundle(f"{src}:build", (1, 3, 32, 32), tmp_path / "b")
    before = _files(bundle.root)
    manifest = (bundle.root / "manifest.json").read_text()
    assert main(["quantize", str(bundle.root), "--precision", "fp16"]) == 1
    assert "validation failed" in capsys.readouterr().err
    assert _files(bundle.root) == before
    assert (bundle.root / "manifest.json").read_text() == manifest
