"""Every file the TensorRT stage writes (script, engine, sidecar) stays inside the bundle.

Only an explicit ``--out`` (the user's own choice on the command line) puts them elsewhere; a
recipe or manifest name never does. Real bundles from the project's own ONNX export.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from edge_se.cli import main
from edge_se.errors import BundleError
from tests.tensorrt.conftest import make_bundle, write_recipe
from trust_helpers import recipe_text, tree

@pytest.fixture
def nested(tmp_path, security_onnx, monkeypatch):
    """A bundle three folders down, so ``../../x`` and ``../../../x`` both land in this test's tmp_path."""
    monkeypatch.chdir(tmp_path)
    return make_bundle(tmp_path / "a" / "b" / "bundle", {"model.onnx": security_onnx})


@pytest.mark.parametrize("name", ["../../x/z", "../../../x/z", "/tmp/x/z", "x/z", ".."])
def test_recipe_name_with_path_parts_writes_nothing_anywhere(tmp_path, nested, capsys, name):
    recipe = write_recipe(tmp_path / "r.toml", recipe_text(name))
    before = tree(tmp_path)
    code = main(["build", str(nested.root), "--recipe", str(recipe), "--script-only", "10.3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert f"r.toml: name {name!r} is not a plain name" in err
    assert tree(tmp_path) == before  # neither the bundle nor any folder above it changed
    assert not (tmp_path / "x").exists() and not (nested.root.parent / "x").exists()


def test_script_writer_refuses_an_engine_name_outside_the_folder(tmp_path, nested):
    """Defence at the point of writing, for a Recipe that did not come through load_recipe."""
    from edge_se.tensorrt.build import script_only, write_trtexec_script
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.tensorrt.versions import parse_version

    good = load_recipe(write_recipe(tmp_path / "r.toml", recipe_text("orin")))
    evil = dataclasses.replace(good, name="../../x/z")
    plan = plan_build(evil, parse_version("10.3"), "tensorrt", "input")
    before = tree(tmp_path)
    with pytest.raises(BundleError, match="not a plain name"):
        script_only(nested.root, evil, parse_version("10.3"))
    with pytest.raises(BundleError, match="not a plain name"):
        write_trtexec_script(nested, evil, plan, nested.root, "../../x/z.engine")
    assert tree(tmp_path) == before


def test_script_writer_refuses_a_script_name_outside_the_folder(tmp_path):
    from edge_se.tensorrt.trtexec import write_script

    (tmp_path / "bundle").mkdir()
    for target in ("../../x/z", "../z", "a\nb"):
        with pytest.raises(BundleError):
            write_script(tmp_path / "bundle", "echo hi\n", target)
    assert tree(tmp_path) == {"bundle"}


def test_script_writer_does_not_follow_a_symlink_out_of_the_bundle(tmp_path, nested):
    from edge_se.tensorrt.trtexec import write_script

    outside = tmp_path / "outside.sh"
    outside.write_text("original\n")
    (nested.root / "build_orin.sh").symlink_to(outside)
    with pytest.raises(BundleError, match="outside"):
        write_script(nested.root, "echo hi\n", "orin")
    assert outside.read_text() == "original\n"


def test_sidecar_is_written_only_inside_its_root(tmp_path):
    from edge_se.tensorrt.sidecar import sidecar_path, write_sidecar

    root = tmp_path / "a" / "bundle"
    root.mkdir(parents=True)
    with pytest.raises(BundleError, match="outside"):
        write_sidecar(root / ".." / ".." / "z.engine", {"built_by": "test"}, root=root)
    assert not (tmp_path / "z.engine.json").exists()
    inside = write_sidecar(root / "ok.engine", {"built_by": "test"}, root=root)
    assert inside == sidecar_path(root / "ok.engine") and inside.is_file()


def test_an_explicit_out_folder_outside_the_bundle_is_the_users_choice(tmp_path, nested):
    """``--out``: the script goes to the user's folder and points back at the bundle's ONNX."""
    from edge_se.tensorrt.build import write_trtexec_script
    from edge_se.tensorrt.plan import plan_build
    from edge_se.tensorrt.recipe import load_recipe
    from edge_se.tensorrt.versions import parse_version

    recipe = load_recipe(write_recipe(tmp_path / "r.toml", recipe_text("orin")))
    plan = plan_build(recipe, parse_version("10.3"), "tensorrt", "input")
    out = tmp_path / "out"
    out.mkdir()
    script = write_trtexec_script(nested, recipe, plan, out, recipe.engine_name())
    assert script == out / "build_orin.sh"
    assert "--onnx=../a/b/bundle/model.onnx" in script.read_text()


@pytest.mark.parametrize("cache", ["../../x/timing.cache", "/tmp/elsewhere/timing.cache", "~/.bashrc"])
def test_recipe_timing_cache_outside_its_folder_is_refused(tmp_path, nested, capsys, cache):
    text = recipe_text("orin") + f"\n[build]\ntiming_cache = {json.dumps(cache)}\n"
    recipe = write_recipe(tmp_path / "r.toml", text)
    code = main(["build", str(nested.root), "--recipe", str(recipe), "--script-only", "10.3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "build.timing_cache" in err and "inside the recipe's folder" in err


def test_recipe_timing_cache_inside_its_folder_is_kept(tmp_path):
    from edge_se.tensorrt.recipe import load_recipe

    text = recipe_text("orin") + '\n[build]\ntiming_cache = "timing/orin.cache"\n'
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", text))
    assert recipe.timing_cache == (tmp_path / "timing" / "orin.cache").resolve()
