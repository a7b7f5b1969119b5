"""Every TensorRT attribute edge-se's own code uses exists in the real bindings of each version whose
build plans run it (table generated from NVIDIA's wheels by scripts/trt_api_surface.py).

The code side is read from the source of the imported package (tests/tensorrt/trt_uses.py: every
module that can hold TensorRT objects, objects typed by the naming convention). The version side
comes from the planner itself: ``plan_build`` for every precision mode, policy, calibrator and DLA
setting on each version in the table, and ``engine.api_paths(plan)``, which the build dispatches on.
"""

from __future__ import annotations

import ast
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edge_se
from edge_se.runtime.backends import tensorrt_runner as runner
from edge_se.tensorrt import calibrator, engine
from edge_se.tensorrt.plan import plan_build
from edge_se.tensorrt.recipe import CALIBRATORS, POLICIES, RecipeError, parse_recipe
from edge_se.tensorrt.versions import CLASSIC, era, has_dla_support, parse_version
from tests.tensorrt.conftest import ROOT
from tests.tensorrt.trt_uses import guards_of, scan, tensorrt_modules

PACKAGE = Path(edge_se.__file__).resolve().parent  # the imported package's source, not the checkout's
TABLE = json.loads((PACKAGE / "tensorrt/data/trt_api.json").read_text())["versions"]
VERSIONS = sorted(TABLE, key=parse_version)
ENUMS = {c for v in TABLE.values() for c, info in v["api"].items() if info["kind"] == "enum"}
MODULES = {p: scan(p, ENUMS) for p in tensorrt_modules(PACKAGE)}
USING = [p for p, s in MODULES.items() if s.uses or s.problems]  # modules that touch TensorRT objects


def _module(path: Path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return importlib.import_module(".".join(rel.parts))


def declared_groups(module) -> dict[str, dict[str, tuple[str, ...]]]:
    """A module's ``TRT_API`` by path: grouped (``engine``), or flat on its ``TRT_PATH`` (default "common")."""
    api = getattr(module, "TRT_API", None)
    if api is None:
        return {}
    if api and all(isinstance(v, dict) for v in api.values()):
        return api
    return {getattr(module, "TRT_PATH", "common"): api}


def _recipe(precision: dict, target: str = "desktop", tensorrt: str = ">=8.5", batch=(1, 2, 4), **tgt):
    data = {"model": {"spec": "m", "input_shape": [batch[1], 3, 64, 64], "batch": list(batch)},
            "target": {"name": target, "tensorrt": tensorrt, **tgt}, "precision": precision,
            "calibration": {"spec": "c.toml"}}
    return parse_recipe(data, "t.toml", Path("."))


def recipes() -> dict[str, object]:
    """One recipe per planner decision: every precision mode, INT8 path, policy, calibrator, DLA."""
    out = {"fp32": _recipe({"mode": "fp32"})}
    for policy in POLICIES:
        if policy != "auto":
            out[f"fp16/{policy}"] = _recipe({"mode": "fp16", "policy": policy})
        for int8 in ("auto", "qdq"):
            out[f"int8-{int8}/{policy}"] = _recipe({"mode": "int8", "int8": int8, "policy": policy})
        for cal in CALIBRATORS:
            out[f"int8-calibrator-{cal}/{policy}"] = _recipe(
                {"mode": "int8", "int8": "calibrator", "policy": policy, "calibrator": cal}, tensorrt=">=8.5,<11")
    for mode in ("fp32", "fp16", "int8"):
        for fallback in (True, False):
            out[f"dla-{mode}/fallback={fallback}"] = _recipe(
                {"mode": mode}, target="jetson-orin", tensorrt=">=8.5,<11", batch=(2, 2, 2), dla_core=1,
                gpu_fallback=fallback)
    return out


RECIPES = recipes()


def plans(version: str) -> dict[str, object]:
    """name -> the plan for ``version``, or the RecipeError the planner refuses it with."""
    out = {}
    for name, recipe in RECIPES.items():
        try:
            out[name] = plan_build(recipe, parse_version(version))
        except RecipeError as e:
            out[name] = e
    return out


def missing(version_key: str, groups) -> list[str]:
    api = TABLE[version_key]["api"]
    gaps = []
    for group in groups:
        for cls, members in group.items():
            if cls not in api:
                gaps.append(cls)
                continue
            gaps += [f"{cls}.{m}" for m in members if m not in api[cls]["members"]]
    return gaps


def test_table_covers_8_6_10_3_newest_10_and_11():
    assert {"8.6", "10.3", "10.16", "11.0", "11.4"} <= set(TABLE)


def test_the_scan_reads_the_imported_package_and_finds_the_modules_that_touch_tensorrt():
    names = {p.relative_to(PACKAGE).as_posix() for p in USING}
    assert {"tensorrt/engine.py", "tensorrt/calibrator.py", "runtime/backends/tensorrt_runner.py"} <= names
    scanned = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"tensorrt/build.py", "runtime/backends/trt_polygraphy.py"} <= scanned  # they hold TensorRT objects
    assert all(p.is_relative_to(PACKAGE) for p in MODULES)


@pytest.mark.parametrize("path", USING, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_tensorrt_use_in_the_code_is_declared_on_the_path_it_runs_on(path):
    """A use inside ``if "<path>" in paths:`` (or in a function called only there) is declared under
    that path or "common"; the rest under "common" (run on every version)."""
    result = MODULES[path]
    assert result.problems == [], f"{path.name}: the scan cannot check these: {result.problems}"
    groups = declared_groups(_module(path))
    assert groups, f"{path.name} touches TensorRT ({', '.join(sorted({str(u) for u in result.uses}))}) but declares no TRT_API"
    undeclared = []
    for use in result.uses:
        group = use.group if len(groups) > 1 else next(iter(groups))  # a flat TRT_API: the module's one path
        ok = False
        for g in {group, "common"}:
            decl = groups.get(g, {})
            ok = ok or (use.member in decl if use.cls == "trt" else use.member in decl.get(use.cls, ()))
        if not ok:
            undeclared.append(f"line {use.line}: {use} (path {group!r})")
    assert undeclared == [], f"{path.name} uses TensorRT API its TRT_API does not declare on that path: {undeclared}"


@pytest.mark.parametrize("path", USING, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_declared_attribute_is_used_on_its_path(path):
    """No stale declaration (it would be checked for nothing). Members of an enum whose values the
    module reads by name (the runner's dtype table) count as used."""
    result = MODULES[path]
    groups = declared_groups(_module(path))
    used = {(u.group if len(groups) > 1 else next(iter(groups)), u.cls, u.member) for u in result.uses}
    stale = []
    for g, api in groups.items():
        for cls, members in api.items():
            if not any(c == "trt" and m == cls or c == cls for _, c, m in used) and cls not in result.by_name:
                stale.append(f"{g}: {cls}")
            for m in members:
                on_path = any(c == cls and mm == m and (ug == g or g == "common") for ug, c, mm in used)
                if not on_path and cls not in result.by_name:
                    stale.append(f"{g}: {cls}.{m}")
    assert stale == [], f"{path.name} declares TensorRT API it does not use on that path: {stale}"


def test_the_paths_a_build_takes_follow_its_plan():
    p86, p103, p110 = plans("8.6"), plans("10.3"), plans("11.0")
    assert engine.api_paths(p86["int8-calibrator-minmax/keep-gates"]) == {
        "common", "calibrator", "calibration-profile", "layer-precisions"}
    assert engine.api_paths(p103["int8-calibrator-entropy2/all"]) == {"common", "calibrator"}  # no 10.x profile
    assert engine.api_paths(p103["dla-fp16/fallback=True"]) == {"common", "dla"}
    assert engine.api_paths(p110["fp16/keep-gates"]) == engine.api_paths(p110["int8-auto/keep-gates"]) == {"common"}


def test_every_declared_path_is_one_the_planner_can_choose():
    chosen = {"common"}
    for version in VERSIONS:
        chosen |= {g for plan in plans(version).values() if not isinstance(plan, Exception) for g in engine.api_paths(plan)}
    declared = {g for p in USING for g in declared_groups(_module(p))}
    assert declared <= chosen, f"TRT_API paths no plan takes (never checked): {sorted(declared - chosen)}"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_declared_attribute_exists_in_each_version_whose_plans_run_it(version):
    gaps = {}
    for name, plan in plans(version).items():
        if isinstance(plan, Exception):
            continue
        paths = engine.api_paths(plan)
        for p in USING:
            for g, api in declared_groups(_module(p)).items():
                if g in paths:
                    gaps.update({f"{p.name}[{g}]: {m}": name for m in missing(version, [api])})
    assert gaps == {}, f"TensorRT {version} lacks (item: the recipe whose plan runs it): {gaps}"


@pytest.mark.parametrize("version", VERSIONS)
def test_flags_and_calibrators_the_planner_chooses_exist_in_that_version(version):
    api = TABLE[version]["api"]
    bad = {}
    for name, plan in plans(version).items():
        if isinstance(plan, Exception):
            continue
        flags = set(plan.builder_flags) - set(api["BuilderFlag"]["members"])
        flags |= set(plan.network_flags) - set(api["NetworkDefinitionCreationFlag"]["members"])
        flags |= set(plan.builder_flags) - set(engine._FLAGS) - {"GPU_FALLBACK"}  # what the build can pass on
        if plan.calibrator and calibrator.ALGORITHMS[plan.calibrator][0] not in api:
            flags.add(calibrator.ALGORITHMS[plan.calibrator][0])
        if flags:
            bad[name] = sorted(flags)
    assert bad == {}, f"TensorRT {version}: plans choose what its bindings lack: {bad}"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_sweep_plans_every_recipe_the_version_can_build(version):
    """Refused: calibrators on 11.x, DLA where the version has none; everything else is planned."""
    v = parse_version(version)
    refused = {name for name, plan in plans(version).items() if isinstance(plan, Exception)}
    expect = set()
    if era(v) != CLASSIC:
        expect |= {n for n in RECIPES if n.startswith("int8-calibrator")}
    if era(v) != CLASSIC or not has_dla_support(v):
        expect |= {n for n in RECIPES if n.startswith("dla-")}  # (their ranges stop at 11 too)
    assert refused == expect


def test_the_calibrator_module_uses_the_classes_of_its_algorithms_and_runs_only_on_the_calibrator_path():
    uses = {str(u) for u in MODULES[Path(calibrator.__file__).resolve()].uses}
    assert uses == {f"trt.{cls}" for cls, _ in calibrator.ALGORITHMS.values()} == {f"trt.{c}" for c in calibrator.TRT_API}
    guards = guards_of(ast.parse(Path(engine.__file__).read_text()), "make_calibrator")
    assert guards and set(guards) == {"calibrator"}  # engine.py imports and calls it only there


def test_calibrators_and_precision_flags_are_gone_in_11_as_the_dispatch_assumes():
    api = TABLE["11.0"]["api"]
    assert "IInt8EntropyCalibrator2" not in api and "FP16" not in api["BuilderFlag"]["members"]
    assert "int8_calibrator" not in api["IBuilderConfig"]["members"]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_tensor_address_path_polygraphys_runner_takes_exists_in_every_version(version):
    """TrtRunner runs set_input_shape / set_tensor_address / execute_async_v3 from TensorRT 8.5 on."""
    assert {"set_input_shape", "set_tensor_address", "execute_async_v3"} <= set(TABLE[version]["api"]["IExecutionContext"]["members"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="listing the real bindings needs gcc for the null library stand-ins")
def test_table_matches_the_real_wheels():
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", "/tmp/edge-se-probe",
                            "tensorrt-cu12-bindings==10.3.0"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"PyPI not reachable for the TensorRT bindings wheels: {probe.stderr.strip()[-200:]}")
    res = subprocess.run([sys.executable, str(ROOT / "scripts/trt_api_surface.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_runner_has_no_version_dispatch_that_could_send_rtx_down_the_bindings_path():
    """RTX is versioned 1.x; comparing that with 10.0 once took the 8.x bindings path, which RTX lacks.
    Polygraphy's TrtRunner takes the tensor-address path on every version: nothing to compare."""
    source = Path(runner.__file__).read_text()
    assert not any(name in source for name in ("execute_async_v2", "num_bindings", "get_binding_index", "api_path"))
