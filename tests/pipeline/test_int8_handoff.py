"""The INT8 hand-off, quantize -> build --script-only, on what each stage really wrote.

The calibration cache the quantize stage records and its precision decision (the nodes kept in
float) must reach the trtexec script; before the shared vocabulary in ``edge_se/manifest.py`` the
build stage looked for another format name and a field nothing wrote.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from zoo_helpers import digits_recipe

RECIPE = digits_recipe("digits-orin-int8", "jetson-orin", ">=10.3,<10.4",
                       'mode = "int8"\nint8 = "calibrator"\npolicy = "{policy}"\ncalibrator = "minmax"',
                       '[calibration]\nspec = "calib.toml"\nbatch = 4\n')
QDQ_RECIPE = digits_recipe("digits-orin-qdq", "jetson-orin", ">=10.3,<10.4",
                           'mode = "int8"\nint8 = "qdq"\npolicy = "{policy}"')


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_se.cli", "-q", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, small_calib_spec) -> Path:
    root = tmp_path_factory.mktemp("handoff")
    b = root / "b"
    assert _cli("export", "se_digits", "--out", b).returncode == 0
    r = _cli("quantize", b, "--precision", "int8", "--calib", small_calib_spec, "--policy", "keep-gates",
             "--weight-rounding", "nearest")
    assert r.returncode == 0, r.stderr
    return b


def _script_args(script: Path) -> list[str]:
    line = next(line for line in script.read_text().splitlines() if "trtexec" in line and "--onnx=" in line)
    return shlex.split(line)


@pytest.mark.parametrize("policy", ["auto", "keep-gates", "all"])
def test_the_trtexec_script_uses_the_quantize_stages_cache_and_decision(
    quantized, tmp_path, policy, small_calib_spec
):
    manifest = json.loads((quantized / "manifest.json").read_text())
    shutil.copy(small_calib_spec, tmp_path / "calib.toml")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(policy=policy))
    r = _cli("build", quantized, "--recipe", recipe, "--script-only", "10.3")
    assert r.returncode == 0, r.stderr
    args = _script_args(quantized / "build_digits-orin-int8.sh")
    calib = [a.split("=", 1)[1] for a in args if a.startswith("--calib=")]
    cache = next(n for n, rec in manifest["artifacts"].items() if rec["format"] == "tensorrt-calibration-cache")
    assert calib == ["digits-orin-int8.trtexec.calibration.cache"]
    # the quantize stage's scales, under the header trtexec's own (Entropy2) calibrator reads on 10.3
    head, _, body = (quantized / calib[0]).read_text().partition("\n")
    assert head == "TRT-100300-EntropyCalibration2" and body == (quantized / cache).read_text().partition("\n")[2]
    layers = [a for a in args if a.startswith("--layerPrecisions=")]
    if policy == "all":  # nothing kept in float: no per-layer precisions at all
        assert layers == [] and "--precisionConstraints=obey" not in args
        return
    decided = manifest["artifacts"]["model.int8.trt.onnx"]["kept_in_float"]["kept_nodes"]
    named = layers[0].split("=", 1)[1].split(",")
    assert decided and sorted(n.rsplit(":", 1)[0] for n in named) == sorted(decided)
    assert all(n.rsplit(":", 1)[1] == "fp32" for n in named) and "--precisionConstraints=obey" in args


def test_recipe_auto_without_an_int8_decision_is_refused(tmp_path, small_calib_spec):
    b = tmp_path / "b"
    assert _cli("export", "se_digits", "--out", b).returncode == 0
    shutil.copy(small_calib_spec, tmp_path / "calib.toml")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(policy="auto"))
    r = _cli("build", b, "--recipe", recipe, "--script-only", "10.3")
    assert r.returncode == 2 and "policy 'auto' needs the decision of the INT8 stage" in r.stderr


@pytest.mark.parametrize("policy", ["auto", "keep-gates", "all"])
def test_the_python_builds_plan_keeps_in_float_what_the_manifest_decided(quantized, tmp_path, policy):
    """The plan ``edge-se build`` follows on 10.3 (layer precisions + obey) names the manifest's
    kept-float nodes, the same list its trtexec script gets."""
    from edge_se.bundle import Bundle
    from edge_se.tensorrt.build import float_nodes, input_name
    from edge_se.tensorrt.engine import api_paths
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe

    (tmp_path / "calib.toml").write_text("")  # the plan does not read the set; the recipe must name one
    recipe_path = tmp_path / "r.toml"
    recipe_path.write_text(RECIPE.format(policy=policy))
    recipe = load_recipe(recipe_path)
    bundle = Bundle.open(quantized)
    plan = plan_build(recipe, (10, 3, 0), "tensorrt", input_name(bundle, recipe))
    nodes, source = float_nodes(bundle, plan, bundle.verify(plan.onnx_artifact))
    assert plan.path == "int8-calibrator" and plan.onnx_artifact == "model.onnx"
    if policy == "all":
        assert (nodes, plan.policy_mode, "layer-precisions" in api_paths(plan)) == ([], "none", False)
        assert "OBEY_PRECISION_CONSTRAINTS" not in plan.builder_flags
        return
    decided = bundle.record("model.int8.trt.onnx").decision.kept_nodes
    assert decided and sorted(nodes) == sorted(decided)
    assert source == ("bundle:model.int8.trt.onnx" if policy == "auto" else "attention-gate patterns")
    assert "layer-precisions" in api_paths(plan) and "OBEY_PRECISION_CONSTRAINTS" in plan.builder_flags


@pytest.mark.parametrize("policy", ["auto", "keep-gates", "all"])
def test_a_qdq_build_refuses_a_qdq_file_quantized_under_another_policy(quantized, tmp_path, policy):
    """A Q/DQ build takes its precisions from model.int8.trt.onnx (here quantized with keep-gates):
    a recipe asking for another policy is refused, not built with the file's."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(QDQ_RECIPE.format(policy=policy))
    script = quantized / "build_digits-orin-qdq.sh"
    r = _cli("build", quantized, "--recipe", recipe, "--script-only", "10.3")
    if policy == "all":
        assert r.returncode == 2 and not script.exists()
        assert "quantized with policy 'keep-gates'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        return
    assert r.returncode == 0, r.stderr
    args = _script_args(script)
    assert "--onnx=model.int8.trt.onnx" in args and not [a for a in args if a.startswith("--layerPrecisions")]
    script.unlink()


def test_a_qdq_recipe_without_a_policy_follows_the_qdq_file(quantized, tmp_path):
    """No precision.policy: the Q/DQ build takes model.int8.trt.onnx as the INT8 stage made it
    (policy auto), whatever policy that was, and records it; a calibrator build keeps its default."""
    from edge_se.bundle import Bundle
    from edge_se.tensorrt.build import float_nodes
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text(digits_recipe("digits-orin-qdq", "jetson-orin", ">=10.3,<10.4", 'mode = "int8"\nint8 = "qdq"'))
    plan = plan_build(load_recipe(recipe), (10, 3, 0))
    assert (plan.policy, plan.policy_mode) == ("auto", "in-graph") and any("policy not set" in n for n in plan.notes)
    bundle = Bundle.open(quantized)
    assert float_nodes(bundle, plan, bundle.verify(plan.onnx_artifact)) == ([], "none")
    r = _cli("build", quantized, "--recipe", recipe, "--script-only", "10.3")
    assert r.returncode == 0, r.stderr
    (quantized / "build_digits-orin-qdq.sh").unlink()
    (tmp_path / "calib.toml").write_text("")  # the plan does not read the set; the recipe must name one
    calib = tmp_path / "c.toml"
    calib.write_text(digits_recipe("c", "jetson-orin", ">=10.3,<10.4", 'mode = "int8"\nint8 = "calibrator"',
                                   '[calibration]\nspec = "calib.toml"\nbatch = 4\n'))
    assert plan_build(load_recipe(calib), (10, 3, 0)).policy == "keep-gates"
