"""Engine sidecars: written beside the untouched plan; loading refuses a mismatch with the rebuild command."""

from __future__ import annotations

import json

import pytest

from edge_se.tensorrt.sidecar import (
    EngineMismatchError,
    check_sidecar,
    compare,
    policy_hash,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

BUILT = {
    "tensorrt_version": "10.3.0", "tensorrt_flavor": "tensorrt", "cuda_version": "12.6", "driver_version": "12.6",
    "gpu_name": "Orin", "compute_capability": "8.7", "dla_core": None, "engine_sha256": "e" * 64,
    "rebuild_command": "edge-se build b --recipe export/jetson-orin-int8.toml",
}
HERE = {"tensorrt_version": "10.3.0", "tensorrt_flavor": "tensorrt", "cuda_version": "12.6",
        "driver_version": "12.6", "gpu_name": "Orin", "compute_capability": "8.7", "engine_sha256": "e" * 64}


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "jetson-orin.engine"
    path.write_bytes(b"plan bytes exactly as TensorRT wrote them")
    write_sidecar(path, BUILT)
    return path


def test_sidecar_is_a_separate_file_and_the_plan_is_untouched(engine):
    assert sidecar_path(engine).name == "jetson-orin.engine.json"
    assert engine.read_bytes() == b"plan bytes exactly as TensorRT wrote them"
    assert read_sidecar(engine)["tensorrt_version"] == "10.3.0"


def test_sidecar_records_every_field_even_unknown_ones_as_null(engine):
    data = json.loads(sidecar_path(engine).read_text())
    assert data["format"] == "edge-se-engine" and data["onnx_sha256"] is None and data["built"]


def test_unknown_sidecar_field_is_refused(tmp_path):
    with pytest.raises(Exception, match="unknown fields"):
        write_sidecar(tmp_path / "x.engine", {"header": 1})


def test_matching_machine_passes(engine):
    assert check_sidecar(engine, HERE)["gpu_name"] == "Orin"


def test_other_tensorrt_version_fails_naming_both_and_the_rebuild_command(engine):
    with pytest.raises(EngineMismatchError) as e:
        check_sidecar(engine, {**HERE, "tensorrt_version": "10.7.0"})
    msg = str(e.value)
    assert "tensorrt_version: engine 10.3.0, here 10.7.0" in msg
    assert "'edge-se build b --recipe export/jetson-orin-int8.toml'" in msg and "\n" not in msg


def test_other_gpu_architecture_fails(engine):
    with pytest.raises(EngineMismatchError, match=r"compute_capability: engine 8.7, here 7.2"):
        check_sidecar(engine, {**HERE, "compute_capability": "7.2", "gpu_name": "Xavier"})


def test_modified_engine_bytes_fail(engine):
    with pytest.raises(EngineMismatchError, match="engine_sha256"):
        check_sidecar(engine, {**HERE, "engine_sha256": "0" * 64})


def test_newer_driver_is_not_fatal(engine):
    diffs = compare(read_sidecar(engine), {**HERE, "driver_version": "12.8"})
    assert [(d.field, d.fatal) for d in diffs] == [("driver_version", False)]
    check_sidecar(engine, {**HERE, "driver_version": "12.8"})


def test_dla_core_missing_on_this_device_fails(tmp_path):
    path = tmp_path / "dla.engine"
    path.write_bytes(b"x")
    write_sidecar(path, {**BUILT, "dla_core": 1})
    with pytest.raises(EngineMismatchError, match="dla_core: engine 1, here 0 DLA cores"):
        check_sidecar(path, {**HERE, "dla_cores": 0})


def test_trtexec_built_engine_without_gpu_fields_is_checked_on_what_it_has(tmp_path):
    path = tmp_path / "t.engine"
    path.write_bytes(b"x")
    write_sidecar(path, {"tensorrt_version": "8.5.2", "built_by": "trtexec"})
    with pytest.raises(EngineMismatchError, match="tensorrt_version: engine 8.5.2, here 10.3.0"):
        check_sidecar(path, HERE)


def test_missing_sidecar_says_how_to_rebuild(tmp_path):
    path = tmp_path / "bare.engine"
    path.write_bytes(b"x")
    with pytest.raises(EngineMismatchError, match="has no sidecar bare.engine.json.*edge-se build"):
        read_sidecar(path)


def test_corrupt_sidecar_is_refused(engine):
    sidecar_path(engine).write_text("{")
    with pytest.raises(EngineMismatchError, match="not valid JSON"):
        read_sidecar(engine)


def test_policy_hash_depends_on_policy_and_nodes_not_their_order():
    assert policy_hash("keep-gates", ["a", "b"]) == policy_hash("keep-gates", ["b", "a"])
    assert policy_hash("keep-gates", ["a"]) != policy_hash("all", ["a"])


def test_trtexec_reported_version_matches_the_bindings_full_version(tmp_path):
    path = tmp_path / "t.engine"
    path.write_bytes(b"x")
    write_sidecar(path, {"tensorrt_version": "10.3.0", "built_by": "trtexec"})
    check_sidecar(path, {**HERE, "tensorrt_version": "10.3.0.30"})


def test_a_multi_architecture_rtx_build_runs_on_each_of_its_architectures(tmp_path):
    """``--compute-capability 8.6 --compute-capability 8.9`` records "8.6,8.9" (build.py); each runs it."""
    path = tmp_path / "desktop.engine"
    path.write_bytes(b"plan")
    write_sidecar(path, {**BUILT, "tensorrt_flavor": "tensorrt_rtx", "gpu_name": None, "compute_capability": "8.6,8.9",
                         "engine_sha256": None})
    here = {**HERE, "tensorrt_flavor": "tensorrt_rtx", "engine_sha256": None}
    for cc in ("8.6", "8.9"):
        check_sidecar(path, {**here, "compute_capability": cc})
    with pytest.raises(EngineMismatchError, match=r"compute_capability: engine 8.6,8.9, here 12.0"):
        check_sidecar(path, {**here, "compute_capability": "12.0"})


def test_the_runner_puts_a_dla_engine_on_its_core_and_collects_this_devices_cores():
    """Decision code of TensorRTRunner.activate (GPU-only otherwise): the core comes from the sidecar,
    and the runner passes IRuntime.num_DLA_cores as ``dla_cores`` so the sidecar's DLA check runs."""
    import inspect

    from edge_se.errors import InputError
    from edge_se.runtime.backends import tensorrt_runner as runner

    assert runner.dla_core({**BUILT, "dla_core": 1}) == 1 and runner.dla_core(BUILT) is None
    assert runner.dla_core(None) is None
    with pytest.raises(InputError, match="dla_core must be a DLA core number"):
        runner.dla_core({"dla_core": "0"})
    source = inspect.getsource(runner.TensorRTRunner.activate)
    assert '"dla_cores": int(getattr(self._runtime, "num_DLA_cores"' in source
    assert source.index("self._runtime.DLA_core = core") < source.index("EngineFromBytes")
