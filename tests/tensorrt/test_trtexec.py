"""trtexec scripts: every flag exists in the targeted TensorRT's trtexec (table from NVIDIA's source)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from edge_se.tensorrt.plan import plan_build
from edge_se.tensorrt.recipe import load_recipe
from edge_se.tensorrt.trtexec import render_script, table_version, trtexec_command
from edge_se.tensorrt.versions import parse_version
from tests.tensorrt.conftest import RECIPES, ROOT

TABLE = json.loads((ROOT / "edge_se/tensorrt/data/trtexec_flags.json").read_text())["versions"]


def cases():
    for path in RECIPES:
        r = load_recipe(path)
        for key in TABLE:
            v = parse_version(key)
            if r.tensorrt.contains(v) and (r.target.shipped is None or v in r.target.shipped):
                yield pytest.param(path, key, id=f"{path.stem}-trt{key}")


def command(recipe, version: str, float_layers=("/layer1/se/Sigmoid",)):
    plan = plan_build(recipe, parse_version(version))
    return plan, trtexec_command(plan, onnx="model.onnx", engine="x.engine", calibration_cache="x.cache",
                                 float_layers=float_layers, timing_cache="t.cache")


@pytest.mark.parametrize("path,version", list(cases()))
def test_shipped_recipe_script_uses_only_flags_of_that_tensorrt(path, version):
    _, cmd = command(load_recipe(path), version)
    documented = TABLE[version]["flags"]
    flags = [a.split("=", 1)[0] for a in cmd[1:]]
    assert [f for f in flags if documented.get(f) != "yes"] == []


def test_every_shipped_recipe_has_a_table_version():
    covered = {p.values[0] for p in cases()}
    assert covered == set(RECIPES)


def test_the_table_reflects_trtexec_11_removing_precision_flags():
    assert {"--fp16", "--int8", "--calib"} <= set(TABLE["10.3"]["flags"])
    assert not {"--fp16", "--int8", "--calib", "--precisionConstraints"} & set(TABLE["11.0"]["flags"])


def test_build_only_is_build_only_on_8_5_and_skip_inference_later():
    xavier = load_recipe("export/jetson-xavier-fp16.toml")
    assert "--buildOnly" in command(xavier, "8.5")[1]
    orin = load_recipe("export/jetson-orin-int8.toml")
    assert "--skipInference" in command(orin, "10.3")[1]


def test_calibrator_script_reads_the_calibration_cache_with_int8_and_fp16():
    _, cmd = command(load_recipe("export/jetson-orin-int8.toml"), "10.3")
    assert {"--int8", "--fp16", "--calib=x.cache"} <= set(cmd)


def test_keep_gates_becomes_layer_precisions_on_classic_tensorrt():
    _, cmd = command(load_recipe("export/jetson-orin-int8.toml"), "10.3")
    assert "--precisionConstraints=obey" in cmd and "--layerPrecisions=/layer1/se/Sigmoid:fp32" in cmd
    # and their output types, as the Python build sets both (issue 15)
    assert "--layerOutputTypes=/layer1/se/Sigmoid:fp32" in cmd


def test_dla_script_selects_the_core_and_allows_gpu_fallback():
    _, cmd = command(load_recipe("export/jetson-orin-int8-dla.toml"), "10.3")
    assert {"--useDLACore=0", "--allowGPUFallback"} <= set(cmd)


def test_trt11_script_has_no_precision_flags_and_builds_the_qdq_model():
    plan, cmd = command(load_recipe("export/desktop-int8-trt11.toml"), "11.1")
    assert plan.onnx_artifact == "model.int8.trt.onnx"
    assert not [a for a in cmd if a.startswith(("--fp16", "--int8", "--calib", "--precisionConstraints", "--layerPrecisions"))]


def test_dynamic_batch_becomes_min_opt_max_shapes():
    _, cmd = command(load_recipe("export/desktop-fp16.toml"), "10.16")
    assert {"--minShapes=input:1x3x224x224", "--optShapes=input:8x3x224x224", "--maxShapes=input:32x3x224x224"} <= set(cmd)


def test_newer_versions_without_a_table_entry_use_the_newest_older_one():
    assert table_version((11, 4, 0)) == "11.1" and table_version((10, 3, 0, 26)) == "10.3"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_rendered_script_is_valid_bash_and_checks_the_onnx_hash(tmp_path):
    plan, cmd = command(load_recipe("export/jetson-orin-int8.toml"), "10.3")
    text = render_script(cmd, plan, target="jetson-orin-int8", recipe="r.toml", onnx_sha256="ab" * 32)
    script = tmp_path / "build.sh"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "sha256sum -c" in text and "missing calibration cache x.cache" in text


def test_script_only_cli_writes_build_script_into_the_bundle(tiny_bundle):
    from edge_se.cli import main

    code = main(["-q", "build", str(tiny_bundle.root), "--recipe", "export/jetson-xavier-fp16.toml", "--script-only", "8.5"])
    script = tiny_bundle.root / "build_jetson-xavier-fp16.sh"
    assert code == 0 and script.is_file() and os.access(script, os.X_OK)
    assert "--fp16" in script.read_text() and "--onnx=model.onnx" in script.read_text()


def test_script_only_for_a_missing_artifact_names_the_stage_that_makes_it(tiny_bundle, capsys):
    from edge_se.cli import main

    code = main(["build", str(tiny_bundle.root), "--recipe", "export/desktop-int8-trt11.toml", "--script-only", "11.1"])
    assert code == 2
    assert "has no model.int8.trt.onnx" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("EDGE_SE_TRT_SOURCE"),
                    reason="set EDGE_SE_TRT_SOURCE to a git clone of NVIDIA/TensorRT to re-derive the flag table")
def test_flag_table_matches_nvidia_trtexec_source():
    res = subprocess.run([sys.executable, str(ROOT / "scripts/trtexec_flags.py"), os.environ["EDGE_SE_TRT_SOURCE"], "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_calibrator_script_uses_the_bundles_calibration_cache_and_keeps_gates_in_fp32(tiny_bundle):
    from edge_se.cli import main

    (tiny_bundle.root / "calibration.cache").write_text("TRT-100300-MinMaxCalibration\ninput: 3c010204\n")
    from edge_se.manifest import TENSORRT_CALIBRATION_CACHE

    tiny_bundle.add_artifact("calibration.cache", stage="quantize", format=TENSORRT_CALIBRATION_CACHE,
                             precision="int8", backend="tensorrt")
    tiny_bundle.save()
    assert main(["-q", "build", str(tiny_bundle.root), "--recipe", "export/jetson-orin-int8.toml", "--script-only", "10.3"]) == 0
    text = (tiny_bundle.root / "build_jetson-orin-int8.sh").read_text()
    # the bundle's scales under the header trtexec's Entropy2 calibrator reads (a MinMax header
    # would make trtexec ignore the cache and calibrate on random data)
    assert "--calib=jetson-orin-int8.trtexec.calibration.cache" in text and "--int8" in text
    copy = (tiny_bundle.root / "jetson-orin-int8.trtexec.calibration.cache").read_text()
    assert copy == "TRT-100300-EntropyCalibration2\ninput: 3c010204\n"
    layer_precisions = next(a for a in text.split() if a.startswith("--layerPrecisions="))
    assert "Sigmoid:fp32" in layer_precisions  # the SE gate found by graph pattern


def test_recipe_shape_the_bundles_static_onnx_cannot_take_is_refused(tmp_path, tiny_onnx, capsys):
    from edge_se.cli import main
    from tests.tensorrt.conftest import make_bundle

    bundle = make_bundle(tmp_path / "b", {"model.onnx": tiny_onnx}, recorded=("batch", 3, 32, 32))
    assert main(["build", str(bundle.root), "--recipe", "export/desktop-fp16.toml", "--script-only", "10.3"]) == 2
    assert "has a fixed dim 2 of 32" in capsys.readouterr().err
