"""A bundle is data, never code: nothing from a recipe or a manifest runs in build_<name>.sh.

Real bundles (the tiny SE model exported by the project's own ONNX export), the real CLI
(``edge-se build BUNDLE --recipe R --script-only 10.3``), and the generated script run by bash
with a fake ``trtexec`` that records its argv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_se.cli import main
from tests.tensorrt.conftest import make_bundle, write_recipe
from trust_helpers import recipe_text, tree

needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and sha256sum")

@pytest.fixture
def work(tmp_path, security_onnx, monkeypatch):
    """(tmp_path, bundle): a real bundle; the current folder is tmp_path so `touch PWNED` lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path, make_bundle(tmp_path / "bundle", {"model.onnx": security_onnx})


def recipe_file(path: Path, name: str | None = None, input_name: str | None = None) -> Path:
    return write_recipe(path, recipe_text(name, input_name))


def script_only(bundle_root: Path, recipe: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["build", str(bundle_root), "--recipe", str(recipe), "--script-only", "10.3"])
    return code, capsys.readouterr().err.strip()


def no_pwned(root: Path) -> bool:
    return not list(root.rglob("PWNED"))


@pytest.mark.parametrize("name", ["$(touch PWNED)", "jetson\ntouch PWNED", "`touch PWNED`", "../../x/z"],
                         ids=["subshell", "newline", "backticks", "dotdot"])
def test_hostile_recipe_name_is_refused_by_the_cli(work, capsys, name):
    tmp, bundle = work
    recipe = recipe_file(tmp / "r.toml", name=name)
    before = tree(tmp)
    code, err = script_only(bundle.root, recipe, capsys)
    assert code == 2
    assert err.count("\n") == 0 and "is not a plain name" in err and "r.toml" in err
    assert tree(tmp) == before and no_pwned(tmp)


def test_recipe_file_stem_that_is_not_a_plain_name_is_refused(work, capsys):
    tmp, bundle = work
    recipe = recipe_file(tmp / "$(touch PWNED).toml")
    code, err = script_only(bundle.root, recipe, capsys)
    assert code == 2 and err.count("\n") == 0 and "is not a plain name" in err
    assert not list(bundle.root.glob("build_*"))


def edit_manifest(bundle_root: Path, change) -> None:
    path = bundle_root / "manifest.json"
    data = json.loads(path.read_text())
    change(data["artifacts"]["model.onnx"])
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("field,value", [
    ("sha256", "$(touch PWNED)"),
    ("sha256", "ab" * 32 + "\ntouch PWNED"),
    ("path", "$(touch PWNED)"),
    ("path", "../../outside.onnx"),
    ("path", "/etc/passwd"),
], ids=["sha256-subshell", "sha256-newline", "path-subshell", "path-dotdot", "path-absolute"])
def test_hostile_manifest_makes_script_generation_refuse(work, capsys, field, value):
    tmp, bundle = work
    recipe = recipe_file(tmp / "r.toml", name="orin-fp16")

    def change(record):
        if field == "sha256":
            record["files"][0]["sha256"] = value
        else:
            record["path"] = value

    edit_manifest(bundle.root, change)
    before = tree(tmp)
    code, err = script_only(bundle.root, recipe, capsys)
    assert code == 2 and err.count("\n") == 0
    assert "manifest.json" in err  # refused when the bundle is opened, or when the script is written
    assert tree(tmp) == before and no_pwned(tmp)
    assert not (tmp.parent / "outside.onnx").exists()


@pytest.mark.parametrize("field,value", [
    ("sha256", "$(touch PWNED)"),
    ("path", "$(touch PWNED)"),
    ("path", "../../outside.onnx"),
], ids=["sha256-subshell", "path-subshell", "path-dotdot"])
def test_script_writer_itself_refuses_a_hostile_manifest(work, field, value):
    """Defence at the point of writing: a manifest changed after it was opened is refused too."""
    from edge_se.errors import BundleError
    from edge_se.tensorrt.build import write_trtexec_script
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.tensorrt.versions import parse_version

    tmp, bundle = work
    recipe = load_recipe(recipe_file(tmp / "r.toml", name="orin-fp16"))
    plan = plan_build(recipe, parse_version("10.3"), "tensorrt", "input")
    record = bundle.artifacts["model.onnx"]
    if field == "sha256":
        record["files"][0]["sha256"] = value
    else:
        record["path"] = value
    before = tree(tmp)
    with pytest.raises(BundleError, match="manifest.json") as e:
        write_trtexec_script(bundle, recipe, plan, bundle.root, recipe.engine_name())
    assert "\n" not in str(e.value)
    assert tree(tmp) == before and no_pwned(tmp)


FAKE_TRTEXEC = r"""#!/bin/sh
# records argv NUL-separated, writes the engine it is asked for, prints a version line like trtexec
for a in "$@"; do printf '%s\0' "$a"; done > "$ARGV_LOG"
for a in "$@"; do
  case "$a" in --saveEngine=*) printf 'fake engine' > "${a#--saveEngine=}" ;; esac
done
echo "[I] TensorRT version: 10.3.0"
echo "[I] Selected Device: Orin\"; touch PWNED; \$(touch PWNED)"
echo "[I] Selected Device ID: 0"
echo "[I] Compute Capability: 8.7"
"""


@needs_bash
def test_benign_script_is_valid_bash_and_passes_every_value_as_one_argument(work, capsys, monkeypatch):
    tmp, bundle = work
    # A plain recipe name, but a recipe folder with a newline (pasted into a comment) and a
    # manifest-ish input name full of shell syntax (pasted into --optShapes): data, never code.
    odd_dir = tmp / "recipes\ntouch PWNED\n"
    odd_dir.mkdir()
    weird_input = "in put;$(touch PWNED) `touch PWNED` 'q' \"dq\" $HOME"
    recipe = recipe_file(odd_dir / "r.toml", name="orin-fp16", input_name=weird_input)
    code, err = script_only(bundle.root, recipe, capsys)
    assert code == 0, err
    script = bundle.root / "build_orin-fp16.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.tensorrt.trtexec import trtexec_command
    from edge_se.tensorrt.versions import parse_version

    expected = trtexec_command(plan_build(load_recipe(recipe), parse_version("10.3"), "tensorrt", weird_input),
                               onnx="model.onnx", engine="orin-fp16.engine")[1:]

    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    fake = bin_dir / "trtexec"
    fake.write_text(FAKE_TRTEXEC)
    fake.chmod(0o755)
    log = tmp / "argv.log"
    env = {k: v for k, v in os.environ.items() if k != "TRTEXEC"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", ARGV_LOG=str(log))
    run = subprocess.run(["bash", str(script)], cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr

    argv = log.read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv] == expected
    assert f"--optShapes={weird_input}:1x3x32x32" in expected
    assert no_pwned(tmp)
    side = json.loads((bundle.root / "orin-fp16.engine.json").read_text())
    assert side["tensorrt_version"] == "10.3.0" and side["target"] == "jetson-orin"
    # the device from trtexec's log, reduced to plain characters (a hostile name is data, never JSON or code)
    assert side["compute_capability"] == "8.7" and side["gpu_name"] == "Orin touch PWNED touch PWNED"
    assert side["onnx_sha256"] == bundle.artifacts["model.onnx"]["files"][0]["sha256"]
