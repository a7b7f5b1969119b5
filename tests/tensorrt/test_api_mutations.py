"""The API-surface check catches what it claims: each mutation of a copy of ``edge_se`` below makes
tests/tensorrt/test_api_surface.py fail, naming the mutated attribute; the unmutated copy passes.

Each run is a subprocess in a folder holding the copy, the API-surface test and its harness (no
suite-wide conftest: nothing there is needed, and it imports torch). All runs start at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tensorrt.conftest import ROOT

#: name -> (file in edge_se, [(original text, replacement)], what the failure must name, the test that fails)
MUTATIONS = {
    "made-up builder flag on the build path": (
        "tensorrt/engine.py", [("    paths = api_paths(plan)\n",
                                "    paths = api_paths(plan)\n    fallback = trt.BuilderFlag.NOT_A_FLAG\n")],
        "BuilderFlag.NOT_A_FLAG", "test_every_tensorrt_use_in_the_code_is_declared_on_the_path_it_runs_on"),
    "8.x execution call on the runner's context": (
        "runtime/backends/tensorrt_runner.py", [("            out = self._runner.infer(arrays)\n",
                                                 "            context = self._runner.context\n"
                                                 "            context.execute_async_v2([], 0)\n"
                                                 "            out = self._runner.infer(arrays)\n")],
        "IExecutionContext.execute_async_v2", "test_every_tensorrt_use_in_the_code_is_declared_on_the_path_it_runs_on"),
    "8.x engine API, declared, in the runner (gone in 10.x)": (
        "runtime/backends/tensorrt_runner.py", [('''"get_tensor_profile_shape"),''',
                                                 '''"get_tensor_profile_shape", "get_profile_shape"),'''),
                                                ("self._engine.get_tensor_profile_shape(name, 0)",
                                                 "self._engine.get_profile_shape(0, name)")],
        "ICudaEngine.get_profile_shape", "test_every_declared_attribute_exists_in_each_version_whose_plans_run_it[10.3]"),
    "typo set_calib_profile on the 8.x calibration path": (
        "tensorrt/engine.py", [("    config.set_calibration_profile(cal)\n", "    config.set_calib_profile(cal)\n")],
        "IBuilderConfig.set_calib_profile", "test_every_tensorrt_use_in_the_code_is_declared_on_the_path_it_runs_on"),
    "FP16 flag in an 11.x plan": (
        "tensorrt/plan.py", [('            path, onnx = "fp16-typed", ONNX_FP16\n',
                              '            path, onnx = "fp16-typed", ONNX_FP16\n            flags.append("FP16")\n')],
        "FP16", "test_flags_and_calibrators_the_planner_chooses_exist_in_that_version[11.0]"),
    "FP16 flag set on the common (strongly typed too) path, declared": (
        # declared too, so only the per-version check can catch it
        "tensorrt/engine.py", [('''        if "calibration-profile" in paths:\n''',
                                '''        config.set_flag(trt.BuilderFlag.FP16)\n        if "calibration-profile" in paths:\n'''),
                               ('''        "MemoryPoolType": ("WORKSPACE",),\n''',
                                '''        "MemoryPoolType": ("WORKSPACE",),\n        "IBuilderConfig": ("set_flag",),\n'''
                                '''        "BuilderFlag": ("FP16",),\n''')],
        "BuilderFlag.FP16", "test_every_declared_attribute_exists_in_each_version_whose_plans_run_it[11.0]"),
}
_WHICH = '''import os, edge_se


def test_the_copy_is_what_runs():
    assert os.path.dirname(edge_se.__file__) == os.path.join(os.environ["EDGE_SE_COPY"], "edge_se"), edge_se.__file__
'''


def _copy(folder: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "edge_se", folder / "edge_se", ignore=ignore)
    tests = folder / "tests" / "tensorrt"
    tests.mkdir(parents=True)
    for name in ("conftest.py", "trt_uses.py", "test_api_surface.py"):
        shutil.copyfile(ROOT / "tests" / "tensorrt" / name, tests / name)
    (tests / "test_the_copy_runs.py").write_text(_WHICH)
    shutil.copyfile(ROOT / "pyproject.toml", folder / "pyproject.toml")  # markers
    return folder


def _mutate(folder: Path, file: str, edits) -> None:
    path = folder / "edge_se" / file
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"mutation target not found once in {file}: {old!r}"
        text = text.replace(old, new)
    path.write_text(text)


def _start(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(folder), "EDGE_SE_COPY": str(folder)}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "tests/tensorrt/test_api_surface.py", "tests/tensorrt/test_the_copy_runs.py",
         "-q", "-p", "no:cacheprovider", "-m", "not slow"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> (exit status, output) for the control copy and each mutated copy, run concurrently."""
    procs = {}
    control = _copy(tmp_path_factory.mktemp("control"))
    procs["control"] = _start(control)
    for i, (name, (file, edits, _, _)) in enumerate(MUTATIONS.items()):
        folder = _copy(tmp_path_factory.mktemp(f"mutant{i}"))
        _mutate(folder, file, edits)
        procs[name] = _start(folder)
    out = {}
    for name, proc in procs.items():
        text, _ = proc.communicate(timeout=300)
        out[name] = (proc.returncode, text)
    return out


def test_the_unmutated_copy_passes(runs):
    code, out = runs["control"]
    assert code == 0, out[-3000:]


@pytest.mark.parametrize("name", MUTATIONS)
def test_the_mutation_fails_the_api_surface_check_naming_the_attribute(runs, name):
    code, out = runs[name]
    _, _, attribute, failing = MUTATIONS[name]
    assert code == 1, out[-3000:]
    assert attribute in out, out[-3000:]
    assert f"FAILED tests/tensorrt/test_api_surface.py::{failing}" in out, out[-3000:]
    assert "test_the_copy_runs.py" not in out.split("short test summary")[-1], out[-3000:]  # it ran the copy
