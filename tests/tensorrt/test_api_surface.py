"""Every TensorRT attribute our builder and runtime use exists in the real bindings of each version
the dispatch sends down that path (table generated from NVIDIA's wheels by scripts/trt_api_surface.py)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_se.runtime.backends import tensorrt_runner as runner
from edge_se.tensorrt import calibrator, engine
from edge_se.tensorrt.plan import plan_build
from edge_se.tensorrt.recipe import parse_recipe
from edge_se.tensorrt.versions import era, has_dla_support, parse_version
from tests.tensorrt.conftest import ROOT

TABLE = json.loads((ROOT / "edge_se/tensorrt/data/trt_api.json").read_text())["versions"]
VERSIONS = sorted(TABLE, key=parse_version)


def groups_for(version: tuple[int, ...]) -> list[dict[str, tuple[str, ...]]]:
    """The declared API groups that code paths use on ``version`` (mirrors the dispatch)."""
    out = [engine.TRT_API["common"], runner.TRT_API]
    if era(version) == "classic":
        out += [engine.TRT_API["classic"], calibrator.TRT_API]
    if version < (10, 0):
        out.append(engine.TRT_API["v8"])
    if has_dla_support(version):
        out.append(engine.TRT_API["dla"])
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


@pytest.mark.parametrize("version", VERSIONS)
def test_every_declared_attribute_exists_in_that_versions_bindings(version):
    assert missing(version, groups_for(parse_version(version))) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_flags_chosen_by_the_dispatch_exist_in_that_version(version):
    v = parse_version(version)
    api = TABLE[version]["api"]
    for mode, extra in [("fp32", {}), ("fp16", {}), ("int8", {"int8": "auto"}), ("int8", {"int8": "qdq"}),
                        ("int8", {"int8": "auto", "policy": "keep-gates", "calibrator": "minmax"})]:
        data = {"model": {"spec": "m", "input_shape": [2, 3, 64, 64], "batch": [1, 2, 4]},
                "target": {"name": "desktop", "tensorrt": ">=8.5"}, "precision": {"mode": mode, **extra},
                "calibration": {"spec": "c.toml"}}
        plan = plan_build(parse_recipe(data, "t.toml", Path(".")), v)
        assert set(plan.builder_flags) <= set(api["BuilderFlag"]["members"]), (mode, extra)
        assert set(plan.network_flags) <= set(api["NetworkDefinitionCreationFlag"]["members"]), (mode, extra)
        if plan.calibrator:
            cls = calibrator.ALGORITHMS[plan.calibrator][0]
            assert cls in api


def test_calibrators_and_precision_flags_are_gone_in_11_as_the_dispatch_assumes():
    api = TABLE["11.0"]["api"]
    assert "IInt8EntropyCalibrator2" not in api and "FP16" not in api["BuilderFlag"]["members"]
    assert "int8_calibrator" not in api["IBuilderConfig"]["members"]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_tensor_address_path_polygraphys_runner_takes_exists_in_every_version(version):
    """TrtRunner runs set_input_shape / set_tensor_address / execute_async_v3 from TensorRT 8.5 on."""
    assert {"set_input_shape", "set_tensor_address", "execute_async_v3"} <= set(TABLE[version]["api"]["IExecutionContext"]["members"])


def _trt_attribute_uses(path: Path) -> set[tuple[str, ...]]:
    """``trt.X`` / ``trt.X.Y`` / ``self.trt.X.Y`` chains in a module."""
    uses = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        chain, cur = [], node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            cur = cur.value
        chain.reverse()
        if isinstance(cur, ast.Name) and cur.id == "trt":
            uses.add(tuple(chain[:2]))
        elif isinstance(cur, ast.Name) and cur.id == "self" and chain[:1] == ["trt"] and len(chain) > 1:
            uses.add(tuple(chain[1:3]))
    return uses


@pytest.mark.parametrize("module", [engine, runner, calibrator], ids=lambda m: m.__name__)
def test_every_trt_attribute_in_the_code_is_declared(module):
    declared = {}
    for group in (module.TRT_API.values() if isinstance(next(iter(module.TRT_API.values())), dict) else [module.TRT_API]):
        for cls, members in group.items():
            declared.setdefault(cls, set()).update(members)
    undeclared = [".".join(u) for u in _trt_attribute_uses(Path(module.__file__))
                  if u[0] != "__version__" and u[0] not in declared or (len(u) > 1 and u[1] not in declared[u[0]] and u[1] not in ("__init__",))]
    assert undeclared == []


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
