"""Real builds with TensorRT for RTX (strongly typed, like 11.x; builds without a GPU).

Run by scripts/ci_trt_rtx.sh in an environment with ``tensorrt-rtx-cu12``; the zoo's ONNX files
come from scripts/make_trt_test_models.py (``$EDGE_SE_TRT_MODELS``), made where torch is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.trt_rtx

trt = pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX: pip install tensorrt-rtx-cu12 (scripts/ci_trt_rtx.sh)")

from edge_se.tensorrt._import import import_tensorrt  # noqa: E402
from edge_se.tensorrt.engine import build_serialized  # noqa: E402
from edge_se.tensorrt.plan import plan_build  # noqa: E402
from edge_se.tensorrt.recipe import parse_recipe  # noqa: E402
from tests.tensorrt.conftest import make_bundle  # noqa: E402

MODELS_DIR = Path(os.environ.get("EDGE_SE_TRT_MODELS", "/nonexistent"))
MODELS = json.loads((MODELS_DIR / "models.json").read_text()) if (MODELS_DIR / "models.json").is_file() else []
SMALL = next((m for m in MODELS if m["name"] == "se_digits"), MODELS[0] if MODELS else None)


def recipe_for(shape, precision: str, **precision_extra):
    data = {"model": {"spec": "zoo", "input_shape": [2, *shape[1:]], "batch": [1, 2, 4]},
            "target": {"name": "desktop", "tensorrt": ">=11.0"}, "precision": {"mode": precision, **precision_extra}}
    return parse_recipe(data, "rtx.toml", Path("."))


@pytest.fixture(scope="module")
def rtx():
    return import_tensorrt("tensorrt_rtx")


def zoo_cases():
    if not MODELS:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason="set EDGE_SE_TRT_MODELS to the output of scripts/make_trt_test_models.py"))]
    return [pytest.param(m, kind, id=f"{m['name']}-{kind}") for m in MODELS for kind in ("fp32", "fp16", "int8_qdq")]


#: what TensorRT for RTX's deserializeCudaEngine logs on a machine without a CUDA driver (measured
#: with tensorrt-rtx-cu12 1.7 on the CI machine): a plan cannot be loaded, let alone run, there
NO_DRIVER = "cudaError 35: CUDA driver version is insufficient"


def deserialize(rtx, data: bytes) -> tuple[object | None, list[str]]:
    """The plan deserialized by the RTX runtime through Polygraphy (the runtime backend's path),
    or None and TensorRT's error lines."""
    from polygraphy.exception import PolygraphyException

    from edge_se.runtime.backends.trt_polygraphy import captured, import_polygraphy

    p = import_polygraphy("tensorrt_rtx")
    log: list[str] = []
    with captured(log):
        try:
            return p.EngineFromBytes(data, runtime=rtx.module.Runtime(p.get_trt_logger()))(), log
        except PolygraphyException:
            return None, log


@pytest.mark.parametrize("model,kind", zoo_cases())
def test_zoo_model_parses_builds_and_deserializes_where_a_driver_exists(rtx, model, kind):
    mode = {"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"},
            "int8_qdq": {"precision": "int8", "int8": "qdq"}}[kind]
    recipe = recipe_for(model["input_shape"], **mode)
    plan = plan_build(recipe, rtx.version, rtx.flavor, "input")
    assert plan.strongly_typed and plan.builder_flags == []
    data, report = build_serialized(rtx.module, plan, MODELS_DIR / model[kind])
    assert len(data) > 1000 and report.layers > 0
    engine, log = deserialize(rtx, data)
    if engine is None:  # the one failure accepted: no CUDA driver on this machine (say so exactly)
        assert any(NO_DRIVER in line for line in log), log
    else:
        assert engine.num_io_tensors == 2, log


@pytest.fixture
def small_onnx(tmp_path):
    if SMALL:
        return MODELS_DIR / SMALL["fp32"], SMALL["input_shape"]
    pytest.skip("set EDGE_SE_TRT_MODELS to the output of scripts/make_trt_test_models.py")


def test_weights_in_a_separate_onnx_data_file_are_found(rtx, tmp_path, small_onnx):
    import onnx

    src, shape = small_onnx
    model = onnx.load(str(src))
    path = tmp_path / "external.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="external.onnx.data", size_threshold=0)
    assert (tmp_path / "external.onnx.data").is_file()
    data, _ = build_serialized(rtx.module, plan_build(recipe_for(shape, "fp32"), rtx.version, rtx.flavor), path)
    assert len(data) > 1000


def test_build_for_a_named_architecture_without_a_gpu(rtx, small_onnx):
    src, shape = small_onnx
    data, report = build_serialized(rtx.module, plan_build(recipe_for(shape, "fp32"), rtx.version, rtx.flavor), src,
                                    compute_capabilities=["8.6"])
    assert len(data) > 1000 and report.compute_capabilities == ["8.6"]


def test_build_stage_writes_engine_sidecar_and_script_and_records_them(rtx, tmp_path, small_onnx):
    from edge_se.bundle import Bundle, sha256_file
    from edge_se.tensorrt.build import build_bundle_engine
    from edge_se.tensorrt.recipe import load_recipe

    src, shape = small_onnx
    bundle = make_bundle(tmp_path / "b", {"model.onnx": src, "model.int8.trt.onnx": MODELS_DIR / SMALL["int8_qdq"]},
                         input_shape=tuple(shape), recorded=("batch", *shape[1:]))
    recipe_path = tmp_path / "desktop-int8.toml"
    recipe_path.write_text(
        f'[model]\nspec = "zoo"\ninput_shape = {[2, *shape[1:]]}\nbatch = [1, 2, 4]\n'
        '[target]\nname = "desktop"\ntensorrt = ">=11.0"\n[precision]\nmode = "int8"\nint8 = "qdq"\npolicy = "keep-gates"\n'
    )
    record = build_bundle_engine(bundle.root, load_recipe(recipe_path), flavor="tensorrt_rtx")
    reopened = Bundle.open(bundle.root)
    engine = reopened.verify("desktop-int8.engine")
    side = json.loads((bundle.root / "desktop-int8.engine.json").read_text())
    assert record["plan"]["path"] == "int8-qdq" and side["tensorrt_flavor"] == "tensorrt_rtx"
    assert side["engine_sha256"] == sha256_file(engine) and side["onnx_artifact"] == "model.int8.trt.onnx"
    assert record["trtexec_script"] is None  # RTX has its own CLI, not trtexec
    assert reopened.manifest["tools"]["tensorrt_rtx"] == rtx.version_text
    shutil.rmtree(bundle.root)


def _built_fp32_engine(tmp_path, small_onnx):
    """A bundle of the small ONNX with ``desktop-fp32.engine`` (profile batch 1..4) built by the build stage."""
    from edge_se.tensorrt.build import build_bundle_engine
    from edge_se.tensorrt.recipe import load_recipe

    src, shape = small_onnx
    bundle = make_bundle(tmp_path / "b", {"model.onnx": src}, input_shape=tuple(shape), recorded=("batch", *shape[1:]))
    recipe_path = tmp_path / "desktop-fp32.toml"
    recipe_path.write_text(
        f'[model]\nspec = "zoo"\ninput_shape = {[2, *shape[1:]]}\nbatch = [1, 2, 4]\n'
        '[target]\nname = "desktop"\ntensorrt = ">=11.0"\n[precision]\nmode = "fp32"\n'
    )
    build_bundle_engine(bundle.root, load_recipe(recipe_path), flavor="tensorrt_rtx")
    return bundle, shape


def test_export_triton_serves_the_built_engine_as_tensorrt_plan(rtx, tmp_path, small_onnx, capsys):
    """The build stage's real engine record and sidecar, read by ``edge-se export-triton``."""
    pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient (edge-se[serving])")
    from google.protobuf import text_format

    from edge_se.bundle import sha256_file
    from edge_se.cli import main

    bundle, shape = _built_fp32_engine(tmp_path, small_onnx)
    repo = tmp_path / "repo"
    assert main(["-q", "export-triton", str(bundle.root), "--out", str(repo), "--artifact", "desktop-fp32.engine",
                 "--kind", "gpu"]) == 0
    cfg = text_format.Parse((repo / "tiny" / "config.pbtxt").read_text(), pb2.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 4  # the profile's max
    assert list(cfg.input[0].dims) == list(shape[1:])
    assert sha256_file(repo / "tiny" / "1" / "model.plan") == sha256_file(bundle.root / "desktop-fp32.engine")
    for args, message in ((["--max-batch", "8"], "above artifact"), (["--kind", "cpu"], "GPU instances only"),
                          (["--compute-capability", "0.1"], "not 0.1")):
        assert main(["export-triton", str(bundle.root), "--out", str(tmp_path / "r2"), "--artifact",
                     "desktop-fp32.engine", "--kind", "gpu", *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_export_deepstream_names_the_built_engine_and_its_onnx(rtx, tmp_path, small_onnx, capsys):
    """The build stage's real engine record, read by ``edge-se export-deepstream --engine``."""
    from edge_se.bundle import sha256_file
    from edge_se.cli import main

    bundle, shape = _built_fp32_engine(tmp_path, small_onnx)
    out = tmp_path / "ds"
    assert main(["-q", "export-deepstream", str(bundle.root), "--out", str(out), "--engine", "desktop-fp32.engine",
                 "--batch-size", "4"]) == 0
    text = (out / "config_infer_primary.txt").read_text()
    for line in ("model-engine-file=model.engine", "onnx-file=model.onnx", "network-mode=0", "batch-size=4",
                 f"infer-dims={';'.join(map(str, shape[1:]))}"):
        assert line in text.splitlines()
    assert sha256_file(out / "model.engine") == sha256_file(bundle.root / "desktop-fp32.engine")
    assert sha256_file(out / "model.onnx") == sha256_file(bundle.root / "model.onnx")
    for args, message in ((["--batch-size", "8"], "profile max (4)"), (["--precision", "int8"], "was built fp32")):
        assert main(["export-deepstream", str(bundle.root), "--out", str(tmp_path / "d2"), "--engine",
                     "desktop-fp32.engine", *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "d2").exists()


E2E_BUNDLE = MODELS_DIR / "e2e-bundle"


@pytest.mark.parametrize("shipped,mode", [("desktop-int8-trt11", None), ("desktop-int8-trt11", "fp16")])
def test_the_stages_own_bundle_builds_with_a_shipped_recipe_and_the_matrix_finds_the_engine(rtx, tmp_path, shipped, mode):
    """The end-to-end chain's TensorRT step: export + quantize wrote the bundle (scripts/make_trt_test_models.py),
    the shipped recipe (its model swapped for the bundle's) builds it, and the validation matrix finds the
    engine under the format the build stage recorded."""
    import tomllib

    from edge_se.bundle import Bundle
    from edge_se.cli import main
    from edge_se.manifest import TENSORRT_ENGINE, TRT_QDQ_ARTIFACT
    from edge_se.validate.matrix import _engine_for

    if not (E2E_BUNDLE / "manifest.json").is_file():
        pytest.skip("set EDGE_SE_TRT_MODELS to the output of scripts/make_trt_test_models.py (it writes e2e-bundle)")
    bundle = tmp_path / "b"
    shutil.copytree(E2E_BUNDLE, bundle)
    data = tomllib.loads((Path(__file__).resolve().parents[2] / "export" / f"{shipped}.toml").read_text())
    batch = data["model"]["batch"]
    name = f"{shipped}-{mode or 'int8'}"
    precision = f'mode = "{mode}"\npolicy = "all"' if mode else (
        f'mode = "int8"\nint8 = "{data["precision"]["int8"]}"\npolicy = "{data["precision"]["policy"]}"')
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(f'name = "{name}"\n[model]\nspec = "se_digits"\ninput_shape = [{batch[1]}, 1, 32, 32]\n'
                      f'batch = {batch}\n[target]\nname = "{data["target"]["name"]}"\n'
                      f'tensorrt = "{data["target"]["tensorrt"]}"\n[precision]\n{precision}\n')
    assert main(["-q", "build", str(bundle), "--recipe", str(recipe), "--tensorrt", "tensorrt_rtx", "--no-validate"]) == 0
    b = Bundle.open(bundle)
    engine = f"{name}.engine"
    rec = b.artifact(engine)
    assert rec["format"] == TENSORRT_ENGINE and rec["precision"] == (mode or "int8")
    side = json.loads((bundle / f"{engine}.json").read_text())
    source = TRT_QDQ_ARTIFACT if mode is None else "model.fp16.onnx"
    assert side["onnx_artifact"] == source
    assert side["onnx_sha256"] == b.artifact(source)["files"][0]["sha256"]
    assert _engine_for(b, mode or "int8") == bundle / engine


def test_the_runner_api_it_takes_exists_in_the_real_rtx_bindings(rtx):
    """Every class and member the runner's path for RTX calls, looked up on the installed module."""
    from edge_se.runtime.backends import tensorrt_runner as runner

    gaps = [f"{cls}.{m}" for cls, members in runner.TRT_API.items() for m in members
            if not hasattr(getattr(rtx.module, cls, None), m)]
    assert not gaps, gaps


def test_a_recipe_range_a_static_input_cannot_take_is_refused_before_the_build(rtx, tmp_path, small_onnx):
    """The profile is made from the parsed network's inputs (Polygraphy's CreateConfig gets it)."""
    import onnx

    from edge_se.errors import InputError

    src, shape = small_onnx
    model = onnx.load(str(src))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, [2, *shape[1:]]):
        dim.ClearField("dim_param")
        dim.dim_value = value
    static = tmp_path / "static.onnx"
    onnx.save(model, str(static))
    with pytest.raises(InputError, match="is static"):
        build_serialized(rtx.module, plan_build(recipe_for(shape, "fp32"), rtx.version, rtx.flavor), static)


def test_an_unparsable_onnx_is_one_error_naming_the_file_and_polygraphy_prints_nothing(rtx, tmp_path, capfd):
    from edge_se.errors import ExportError

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    plan = plan_build(recipe_for([2, 1, 32, 32], "fp32"), rtx.version, rtx.flavor)
    with pytest.raises(ExportError, match="could not parse broken.onnx: .*ONNX") as err:
        build_serialized(rtx.module, plan, bad)
    assert "\n" not in str(err.value)
    out, errs = capfd.readouterr()
    assert "[I]" not in out + errs and "[E]" not in out + errs
