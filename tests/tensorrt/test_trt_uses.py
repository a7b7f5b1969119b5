"""The source scan behind the API-surface check (tests/tensorrt/trt_uses.py) on small snippets."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.tensorrt.trt_uses import scan

ENUMS = {"BuilderFlag", "DataType", "TensorIOMode"}


def uses(tmp_path: Path, code: str) -> tuple[set[str], list[str]]:
    path = tmp_path / "m.py"
    path.write_text(textwrap.dedent(code))
    result = scan(path, ENUMS)
    return {f"{u}@{u.group}" for u in result.uses}, result.problems


def test_conventional_parameters_are_tensorrt_objects_and_their_method_calls_are_uses(tmp_path):
    found, problems = uses(tmp_path, """
        def f(trt, config, network):
            config.set_flag(trt.BuilderFlag.FP16)
            return network.get_input(0).name
    """)
    assert found == {"IBuilderConfig.set_flag@common", "trt.BuilderFlag@common", "BuilderFlag.FP16@common",
                     "INetworkDefinition.get_input@common", "ITensor.name@common"}
    assert problems == []


def test_an_annotated_parameter_is_what_its_annotation_says(tmp_path):
    found, _ = uses(tmp_path, """
        def f(engine: str, context):
            return engine.upper(), context.execute_async_v3(0)
    """)
    assert found == {"IExecutionContext.execute_async_v3@common"}


def test_locals_take_the_type_of_what_they_are_bound_to(tmp_path):
    found, problems = uses(tmp_path, """
        def f(trt, builder):
            p = import_polygraphy()
            rt = trt.Runtime(None)
            cal = builder.create_optimization_profile()
            cal.set_shape("x", (1,), (1,), (1,))
            eng = p.EngineFromBytes(b"")()
            return rt.deserialize_cuda_engine(b""), eng.num_bindings
    """)
    assert {"Runtime.deserialize_cuda_engine@common", "IOptimizationProfile.set_shape@common",
            "ICudaEngine.num_bindings@common", "trt.Runtime@common"} <= found
    assert problems == []


def test_attributes_named_by_the_convention_are_typed_whatever_holds_them(tmp_path):
    found, _ = uses(tmp_path, """
        class R:
            def run(self):
                self._runner.context.execute_async_v2([], 0)
                return self._engine.num_io_tensors, getattr(self._runtime, "DLA_core", 0)
    """)
    assert found == {"IExecutionContext.execute_async_v2@common", "ICudaEngine.num_io_tensors@common",
                     "Runtime.DLA_core@common"}


def test_uses_under_a_paths_guard_or_in_a_function_called_only_there_belong_to_that_path(tmp_path):
    found, _ = uses(tmp_path, """
        def helper(config):
            config.set_calibration_profile(None)

        def build(trt, plan, config):
            paths = api_paths(plan)
            if "dla" in paths:
                config.DLA_core = 1
            if "calibration-profile" in paths:
                helper(config)
            config.set_flag(trt.BuilderFlag.FP16)
    """)
    assert {"IBuilderConfig.DLA_core@dla", "IBuilderConfig.set_calibration_profile@calibration-profile",
            "IBuilderConfig.set_flag@common"} <= found


def test_what_the_scan_cannot_type_or_check_is_reported(tmp_path):
    _, problems = uses(tmp_path, """
        def f(trt, engine, name):
            ctx = engine.create_execution_context_without_device_memory()
            self.eng = engine
            return getattr(trt, name)
    """)
    assert len(problems) == 3
    assert "create_execution_context_without_device_memory" in problems[0] and ".eng holds ICudaEngine" in problems[1]
    assert "computed name" in problems[2]


def test_names_outside_the_convention_and_bindings_wrappers_are_not_tensorrt(tmp_path):
    found, problems = uses(tmp_path, """
        def f(flavor):
            trt = import_tensorrt(flavor)
            args = parse(trt.flavor, trt.version_text)
            return trt.module.Builder, args.engine_name
    """)
    assert found == {"trt.Builder@common"} and problems == []
