"""`edge-se validate` re-runs the checks, and refuses bundles it cannot vouch for."""

from __future__ import annotations

import json
import shutil

import pytest

from edge_se.cli import main


@pytest.fixture()
def bundle_copy(export_cached, tmp_path):
    src = export_cached("se_digits", (1, 1, 32, 32))
    dst = tmp_path / "bundle"
    shutil.copytree(src.root, dst)
    return dst


def test_validate_passes_on_a_fresh_bundle_and_records_checks(bundle_copy, capsys):
    assert main(["-q", "validate", str(bundle_copy)]) == 0
    assert "12/12 checks passed" in capsys.readouterr().out  # onnx, ts, pt2: 2 input sets x 2 batches each
    checks = json.loads((bundle_copy / "manifest.json").read_text())["checks"]
    assert all(c["passed"] for c in checks)


def test_validate_fails_with_exit_1_naming_a_modified_artifact(bundle_copy, capsys):
    with open(bundle_copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert main(["-q", "validate", str(bundle_copy)]) == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "model.onnx" in err


def test_validate_refuses_when_the_rebuilt_reference_has_other_weights(bundle_copy, capsys):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["model"]["state_sha256"] = "0" * 64
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["-q", "validate", str(bundle_copy)]) == 2
    assert "different weights than the one exported" in capsys.readouterr().err


def test_validate_names_a_missing_manifest(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_inspect_reports_tensorrt_op_support_per_version(export_cached, capsys):
    bundle = export_cached("se_digits", (1, 1, 32, 32))
    assert main(["inspect", str(bundle.root), "--trt-version", "8.6", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tensorrt"]["table"] == "8.6" and info["tensorrt"]["unsupported"] == []
    ops = {r["op"]: r for r in info["ops"]}
    assert ops["Sigmoid"]["tensorrt"] is True and ops["Conv"]["count"] >= 3


def test_inspect_flags_ops_tensorrt_cannot_parse(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Hardmax", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    path = tmp_path / "hardmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["inspect", str(path), "--trt-version", "8.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensorrt"]["unsupported"] == ["Hardmax"]
