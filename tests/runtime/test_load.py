"""Runtime.load: backend choice, sha256 verification, session options, warm-up, bad bundles."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_se.bundle import Bundle
from edge_se.errors import BundleError, InputError, IntegrityError, MissingDependencyError
from edge_se.preprocess import PreprocessSpec
from edge_se.runtime import Runtime, tensorrt_available

from runtime_helpers import INPUT_SHAPE, torch_logits


def test_onnxruntime_outputs_match_pytorch(bundle_dir, tiny_net, batch4):
    rt = Runtime.load(bundle_dir)
    assert rt.backend == "onnxruntime"
    np.testing.assert_allclose(rt.predict(batch4), torch_logits(tiny_net, batch4), rtol=1e-4, atol=1e-5)


def test_auto_uses_onnxruntime_on_cpu_providers(bundle_dir):
    info = Runtime.load(bundle_dir).describe()
    assert info["providers"] == ["CPUExecutionProvider"]
    assert info["artifact"] == "model.onnx" and info["sha256_verified"] is True


def test_sha256_mismatch_is_refused_naming_the_file(bundle_copy):
    with open(bundle_copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match=r"sha256 mismatch for .*model\.onnx"):
        Runtime.load(bundle_copy)


def test_no_verify_loads_a_file_whose_sha256_differs(bundle_copy):
    bundle = Bundle.open(bundle_copy)
    bundle.artifacts["model.onnx"]["files"][0]["sha256"] = "0" * 64
    bundle.save()
    rt = Runtime.load(bundle_copy, verify=False)
    assert rt.describe()["sha256_verified"] is False


def test_missing_bundle_folder_is_one_line_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="does not exist") as e:
        Runtime.load(tmp_path / "nowhere")
    assert "\n" not in str(e.value)


def test_folder_without_manifest_is_refused(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        Runtime.load(tmp_path)


def test_malformed_manifest_is_refused(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="not valid JSON"):
        Runtime.load(bundle_copy)


def test_missing_artifact_file_is_named(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model\.onnx .*is missing"):
        Runtime.load(bundle_copy)


def test_missing_artifact_file_is_named_even_without_verification(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model\.onnx .*is missing"):
        Runtime.load(bundle_copy, verify=False)


def test_precision_not_in_bundle_lists_what_it_has(bundle_dir):
    with pytest.raises(BundleError, match=r"no int8 artifact .* model\.onnx \(fp32\)"):
        Runtime.load(bundle_dir, precision="int8")


def test_unknown_backend_lists_the_choices(bundle_dir):
    with pytest.raises(InputError, match="auto, onnxruntime, openvino, tensorrt, torchscript"):
        Runtime.load(bundle_dir, backend="coreml")


def test_torchscript_backend_on_request_matches_onnxruntime(bundle_dir, batch4):
    ts = Runtime.load(bundle_dir, backend="torchscript", threads=1)
    assert ts.backend == "torchscript" and ts.describe()["artifact"] == "model.ts"
    np.testing.assert_allclose(ts.predict(batch4), Runtime.load(bundle_dir).predict(batch4), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT and a GPU are present here")
def test_explicit_tensorrt_without_tensorrt_names_the_extra(bundle_dir):
    with pytest.raises(MissingDependencyError, match=r"pip install 'edge-se\[tensorrt\]'|NVIDIA GPU"):
        Runtime.load(bundle_dir, backend="tensorrt")


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT and a GPU are present here")
def test_auto_falls_back_to_onnxruntime_when_the_engine_cannot_run(bundle_copy):
    from edge_se.manifest import TENSORRT_ENGINE

    bundle = Bundle.open(bundle_copy)
    (bundle_copy / "gpu.engine").write_bytes(b"not a real engine")
    bundle.add_artifact("gpu.engine", stage="build", format=TENSORRT_ENGINE, precision="fp16", backend="tensorrt")
    bundle.save()
    rt = Runtime.load(bundle_copy)
    assert rt.backend == "onnxruntime"
    assert any("TensorRT" in n for n in rt.describe()["notes"])


def test_torchscript_without_torch_names_the_extra(bundle_dir):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edge_se.runtime import Runtime\n"
        "from edge_se.errors import MissingDependencyError\n"
        "try:\n"
        f"    Runtime.load({str(bundle_dir)!r}, backend='torchscript')\n"
        "except MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'edge-se[export]'" in out.stdout, out.stderr


def test_onnxruntime_path_imports_neither_torch_nor_export_code(bundle_dir, sample_images):
    code = (
        "import sys\n"
        "from edge_se.runtime import Runtime\n"
        f"rt = Runtime.load({str(bundle_dir)!r})\n"
        f"rt.classify({str(sample_images[0])!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('edge_se.export'))\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


def test_session_options_reach_the_onnxruntime_session(bundle_dir):
    rt = Runtime.load(bundle_dir, threads=1, inter_op_threads=2, graph_optimization="basic",
                      execution_mode="parallel")
    so = rt.runner.session.get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (1, 2)
    assert str(so.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    assert str(so.execution_mode).endswith("ORT_PARALLEL")
    assert rt.describe()["graph_optimization"] == "basic"


def test_bad_session_option_is_refused(bundle_dir):
    with pytest.raises(InputError, match="graph optimization level must be one of"):
        Runtime.load(bundle_dir, graph_optimization="max")


def test_unavailable_execution_provider_is_named(bundle_dir):
    with pytest.raises(MissingDependencyError, match="CUDAExecutionProvider not available"):
        Runtime.load(bundle_dir, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_io_binding_gives_the_same_outputs(bundle_dir, batch4):
    bound = Runtime.load(bundle_dir, io_binding=True)
    assert bound.describe()["io_binding"] is True
    np.testing.assert_array_equal(bound.predict(batch4), Runtime.load(bundle_dir).predict(batch4))


@pytest.mark.parametrize("runs", [0, 3])
def test_warmup_runs_the_requested_number_of_times(bundle_dir, runs):
    assert Runtime.load(bundle_dir, warmup=runs).warmup_runs == runs


def test_single_onnx_file_with_a_preprocessing_spec_takes_images(bundle_dir, sample_images):
    spec = PreprocessSpec.for_input_shape(INPUT_SHAPE)
    single = Runtime.load(bundle_dir / "model.onnx", preprocessing=spec.to_dict(), labels=["x"] * 10)
    np.testing.assert_array_equal(single.predict(sample_images), Runtime.load(bundle_dir).predict(sample_images))
    assert single.classify(sample_images[0], k=1)[0][0].label == "x"


def test_single_file_without_a_preprocessing_spec_refuses_images(bundle_dir, sample_images):
    rt = Runtime.load(bundle_dir / "model.onnx")
    with pytest.raises(InputError, match="pass preprocessing="):
        rt.predict(sample_images[0])


def test_single_file_sha256_is_checked_when_given(bundle_dir):
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        Runtime.load(bundle_dir / "model.onnx", sha256="ab" * 32)
    record = json.loads((bundle_dir / "manifest.json").read_text())["artifacts"]["model.onnx"]
    assert Runtime.load(bundle_dir / "model.onnx", sha256=record["files"][0]["sha256"]).describe()["sha256_verified"]


def test_unknown_file_type_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="cannot tell the format"):
        Runtime.load(path)


def test_corrupt_onnx_file_is_a_one_line_bundle_error(bundle_copy):
    shutil.copy(bundle_copy / "labels.txt", bundle_copy / "model.onnx")
    with pytest.raises(BundleError, match="ONNX Runtime cannot load") as e:
        Runtime.load(bundle_copy, verify=False)
    assert "\n" not in str(e.value)


def test_cache_dir_serves_a_preoptimized_model_with_the_same_outputs(bundle_dir, tmp_path, batch4):
    first = Runtime.load(bundle_dir, cache_dir=tmp_path)
    assert any("saved to the cache" in n for n in first.describe()["notes"])
    second = Runtime.load(bundle_dir, cache_dir=tmp_path)
    info = second.describe()
    assert "pre-optimized" in info["graph_optimization"] and info["sha256_verified"] is True
    np.testing.assert_allclose(second.predict(batch4), first.predict(batch4), rtol=1e-5, atol=1e-6)


def test_a_tampered_cache_entry_is_rebuilt_from_the_verified_artifact(bundle_dir, tmp_path):
    Runtime.load(bundle_dir, cache_dir=tmp_path)
    cached = next(tmp_path.glob("*.onnx"))
    cached.write_bytes(cached.read_bytes() + b"\0")
    rt = Runtime.load(bundle_dir, cache_dir=tmp_path)
    assert any("saved to the cache" in n for n in rt.describe()["notes"])
    assert "pre-optimized" not in rt.describe()["graph_optimization"]


def test_cache_dir_still_refuses_a_modified_artifact_on_a_cache_miss(bundle_copy, tmp_path):
    bundle = Bundle.open(bundle_copy)
    bundle.artifacts["model.onnx"]["files"][0]["sha256"] = "0" * 64
    bundle.save()
    with pytest.raises(IntegrityError, match="model.onnx"):
        Runtime.load(bundle_copy, cache_dir=tmp_path)
