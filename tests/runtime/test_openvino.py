"""The OpenVINO backend on real bundles: numerics, explicit precision, threads, batch, cache, saved
choices, and every bad input of issue 17 (one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from edge_se.bundle import Bundle
from edge_se.errors import BundleError, InputError
from edge_se.runtime import Runtime
from edge_se.runtime.cpu import missing_bf16

from runtime_helpers import run_cli, torch_logits

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'edge-se[openvino]')")


def _bf16_here() -> bool:
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


needs_bf16 = pytest.mark.skipif(not _bf16_here(), reason="this CPU has no BF16 instructions (AVX512_BF16 or AMX)")


def test_fp32_matches_pytorch_and_onnxruntime(bundle_dir, tiny_net, batch4):
    rt = Runtime.load(bundle_dir, "openvino")
    got = rt.predict(batch4)
    np.testing.assert_allclose(got, torch_logits(tiny_net, batch4), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, Runtime.load(bundle_dir).predict(batch4), rtol=1e-5, atol=1e-6)


def test_fp32_is_compiled_in_f32_never_the_cpus_bf16_default(bundle_dir):
    info = Runtime.load(bundle_dir, "ov").describe()
    assert info["backend"] == "openvino" and info["precision"] == "fp32"
    assert "f32" in info["inference_precision"] and "bf16" not in info["inference_precision"]
    assert info["sha256_verified"] is True


@needs_bf16
def test_bf16_runs_the_fp32_file_in_bf16_within_the_fp16_class_tolerance(bundle_dir, tiny_net, batch4):
    from edge_se.reference.numerics import compare_outputs

    rt = Runtime.load(bundle_dir, "openvino", precision="bf16")
    info = rt.describe()
    assert info["artifact"] == "model.onnx" and info["precision"] == "bf16"
    assert "bf16" in info["inference_precision"]
    got = rt.predict(batch4)
    ref = torch_logits(tiny_net, batch4)
    assert not np.array_equal(got, Runtime.load(bundle_dir, "openvino").predict(batch4))  # really BF16
    assert compare_outputs([ref], [got], "bf16")["passed"]


@needs_bf16
def test_auto_with_bf16_means_openvino(bundle_dir):
    assert Runtime.load(bundle_dir, precision="bf16").backend == "openvino"


def test_bf16_on_another_backend_is_refused_naming_openvino(bundle_dir):
    with pytest.raises(InputError, match="--backend openvino"):
        Runtime.load(bundle_dir, "onnxruntime", precision="bf16")


def test_a_cpu_without_bf16_is_refused_naming_the_missing_instruction_sets():
    from edge_se.runtime.backends.openvino import bf16_refusal

    real = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    without = [c for c in real if c != "BF16"]
    message = bf16_refusal(without, flags=frozenset({"avx2", "avx512f"}))
    assert "avx512_bf16" in message and "amx_bf16" in message and "\n" not in message
    assert bf16_refusal(real + ["BF16"], flags=frozenset()) is None
    assert missing_bf16(frozenset({"avx512_bf16"})) is None


def test_fp16_files_are_refused_on_openvino(bundle_dir):
    with pytest.raises(InputError, match="openvino backend runs fp32, bf16, int8"):
        Runtime.load(bundle_dir, "openvino", precision="fp16")


def test_dynamic_batch_and_the_same_input_checks_as_onnxruntime(bundle_dir, batch4):
    rt = Runtime.load(bundle_dir, "openvino")
    assert rt.inputs[0].batch_range == (1, None)
    for n in (1, 3, 9):
        x = np.concatenate([batch4] * 3)[:n]
        np.testing.assert_allclose(rt.predict(x), Runtime.load(bundle_dir).predict(x), rtol=1e-5, atol=1e-6)
    ort = Runtime.load(bundle_dir)
    for bad in (batch4[:, :2], batch4.astype(np.float64)[:, :, :5]):
        with pytest.raises(InputError) as a:
            rt.predict(bad)
        with pytest.raises(InputError) as b:
            ort.predict(bad)
        assert str(a.value) == str(b.value)


def test_static_batch_model_reports_its_batch(static_bundle_dir, batch4):
    rt = Runtime.load(static_bundle_dir, "openvino")
    assert rt.inputs[0].batch_range == (2, 2)
    np.testing.assert_allclose(rt.predict(batch4), Runtime.load(static_bundle_dir).predict(batch4), rtol=1e-5, atol=1e-6)


def test_threads_share_one_compiled_model_each_with_its_own_request(bundle_dir, batch4):
    rt = Runtime.load(bundle_dir, "openvino", threads=1)
    assert rt.describe()["threads"] == 1
    inputs = [batch4 * s for s in (0.5, 1.0, 1.5, 2.0)]
    want = [rt.predict(x) for x in inputs]
    got: dict[int, list[np.ndarray]] = {}

    def worker(i: int) -> None:
        got[i] = [rt.predict(inputs[i]) for _ in range(20)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for y in got[i]:
            np.testing.assert_array_equal(y, want[i])
    assert len(rt.runner._requests) == 5  # the main thread's and one per worker


def test_model_cache_is_written_and_reused(bundle_dir, tmp_path, batch4):
    cache = tmp_path / "ov-cache"
    first = Runtime.load(bundle_dir, "openvino", cache_dir=cache).predict(batch4)
    blobs = sorted(p.name for p in cache.iterdir())
    assert blobs, "OpenVINO wrote nothing to its cache folder"
    rt = Runtime.load(bundle_dir, "openvino", cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == blobs  # a hit: no new entry
    np.testing.assert_array_equal(rt.predict(batch4), first)


def test_a_modified_artifact_is_refused_before_openvino_reads_it(bundle_copy):
    with open(bundle_copy / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    from edge_se.errors import IntegrityError

    with pytest.raises(IntegrityError, match="sha256"):
        Runtime.load(bundle_copy, "openvino")


def _unsupported_op_model(path) -> None:
    """A valid ONNX model ONNX Runtime runs and OpenVINO's ONNX frontend has no rule for (ai.onnx.ml Binarizer)."""
    x = oh.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 4])
    y = oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 4])
    node = oh.make_node("Binarizer", ["input"], ["logits"], domain="ai.onnx.ml", threshold=0.5)
    model = oh.make_model(oh.make_graph([node], "g", [x], [y]),
                          opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.save(model, path)


def test_an_op_openvino_cannot_read_is_named_in_one_line(tmp_path):
    path = tmp_path / "binarizer.onnx"
    _unsupported_op_model(path)
    assert Runtime.load(path).predict(np.ones((2, 4), np.float32)).shape == (2, 4)  # ONNX Runtime runs it
    with pytest.raises(BundleError) as e:
        Runtime.load(path, "openvino")
    assert "Binarizer" in str(e.value) and "\n" not in str(e.value) and "--backend onnxruntime" in str(e.value)


def test_openvino_without_the_extra_names_it_and_exits_3(bundle_dir):
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from edge_se.cli import main\n"
            f"sys.exit(main(['bench', {str(bundle_dir)!r}, '--backend', 'openvino', '--duration', '0.1']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "pip install 'edge-se[openvino]'" in out.stderr and "Traceback" not in out.stderr


def test_runtime_import_and_the_onnxruntime_path_import_neither_openvino_nor_torch(bundle_dir, batch4):
    code = ("import sys, numpy as np\n"
            "from edge_se.runtime import Runtime\n"
            f"rt = Runtime.load({str(bundle_dir)!r})\n"
            "rt.predict(np.zeros((1, 3, 64, 64), np.float32))\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'openvino'))\n"
            "print('LOADED', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


# -- saved choices: written by the real `edge-se bench --backends ... --save-choice` ------------


def _bench(bundle, *args: str):
    return run_cli("bench", str(bundle), "--duration", "0.2", "--threads", "1", *args)


def test_bench_backends_all_measures_every_backend_and_precision(bundle_copy):
    out = _bench(bundle_copy, "--backends", "all", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    rows = {(r["backend"], r["precision"], r["artifact"]) for r in record["rows"]}
    assert {("onnxruntime", "fp32", "model.onnx"), ("openvino", "fp32", "model.onnx")} <= rows
    assert (("openvino", "bf16", "model.onnx") in rows) == _bf16_here()
    for r in record["rows"]:
        assert r.get("error") or (r["p50_ms"] > 0 and r["calls"] > 0), r
    ov_fp32 = next(r for r in record["rows"] if r["backend"] == "openvino" and r["precision"] == "fp32")
    assert ov_fp32["rel_error"] < 1e-5
    assert "runtime_choice" not in json.loads((bundle_copy / "manifest.json").read_text())  # not asked to save


def test_saved_choice_is_followed_by_auto_on_this_cpu(bundle_copy, batch4):
    out = _bench(bundle_copy, "--backends", "openvino", "--precisions", "fp32", "--save-choice")
    assert out.returncode == 0, out.stderr
    assert "fastest fp32" in out.stdout and "saved" in out.stdout
    saved = Bundle.open(bundle_copy).manifest["runtime_choice"]
    assert saved["precisions"]["fp32"]["backend"] == "openvino"
    rt = Runtime.load(bundle_copy)
    assert rt.backend == "openvino" and any("saved choice" in n for n in rt.describe()["notes"])
    assert Runtime.load(bundle_copy, "onnxruntime").backend == "onnxruntime"  # forcing one still works


def test_saved_choice_from_another_cpu_is_ignored_and_said_once(bundle_copy):
    assert _bench(bundle_copy, "--backends", "openvino", "--precisions", "fp32", "--save-choice").returncode == 0
    bundle = Bundle.open(bundle_copy)
    bundle.manifest["runtime_choice"]["machine"]["cpu"] = "Some Other CPU 9000"
    bundle.save()
    rt = Runtime.load(bundle_copy)
    notes = [n for n in rt.describe()["notes"] if "another CPU" in n]
    assert rt.backend == "onnxruntime" and len(notes) == 1 and "Some Other CPU 9000" in notes[0]
    out = _bench(bundle_copy)  # the command line says it, once, on stderr
    assert out.returncode == 0 and "onnxruntime" in out.stdout
    assert out.stderr.count("another CPU (Some Other CPU 9000") == 1, out.stderr


def test_saved_choice_naming_a_foreign_artifact_is_ignored(bundle_copy):
    assert _bench(bundle_copy, "--backends", "openvino", "--precisions", "fp32", "--save-choice").returncode == 0
    bundle = Bundle.open(bundle_copy)
    bundle.manifest["runtime_choice"]["precisions"]["fp32"]["artifact"] = "../../etc/passwd"
    bundle.save()
    rt = Runtime.load(bundle_copy)
    assert rt.backend == "onnxruntime" and rt.describe()["artifact"] == "model.onnx"
    assert any("names no backend or artifact" in n for n in rt.describe()["notes"])


def test_a_saved_choice_openvino_cannot_compile_falls_back_to_onnxruntime(tmp_path):
    """auto may fall back (the user allowed it); --backend openvino may not."""
    root = tmp_path / "b"
    root.mkdir()
    _unsupported_op_model(root / "model.onnx")
    bundle = Bundle.new(root, model={"spec": "binarizer", "input_shape": [1, 4], "dynamic_batch": True})
    bundle.add_artifact("model.onnx", stage="export", format="onnx", precision="fp32", backend="onnxruntime")
    bundle.save()
    out = _bench(root, "--backends", "onnxruntime,openvino", "--save-choice")
    assert out.returncode == 0, out.stderr
    record = Bundle.open(root).manifest["runtime_choice"]
    assert any(r["backend"] == "openvino" and "Binarizer" in r["error"] for r in record["rows"])
    assert record["precisions"]["fp32"]["backend"] == "onnxruntime"  # a failed row is never chosen
    # a choice made where OpenVINO could compile it (another OpenVINO version), read here:
    bundle = Bundle.open(root)
    bundle.manifest["runtime_choice"]["precisions"]["fp32"]["backend"] = "openvino"
    bundle.save()
    rt = Runtime.load(root)
    assert rt.backend == "onnxruntime"
    assert any("failed, using ONNX Runtime" in n and "Binarizer" in n for n in rt.describe()["notes"])
    with pytest.raises(BundleError, match="Binarizer"):
        Runtime.load(root, "openvino")


@pytest.mark.parametrize("args, message", [
    (("--backends", "all", "--backend", "openvino"), "drop --backend"),
    (("--backends", "cuda"), "--backends (or 'all'): expected a comma-separated subset"),
    (("--backends", "all", "--precisions", "fp8"), "--precisions: expected"),
    (("--save-choice",), "go with --backends"),
])
def test_bench_comparison_bad_input_is_one_line_exit_2(bundle_dir, args, message):
    out = _bench(bundle_dir, *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_missing_bf16_names_both_instruction_sets():
    assert "avx512_bf16" in missing_bf16(frozenset({"sse2"})) and "amx_bf16" in missing_bf16(frozenset({"sse2"}))


def _int8_conv_minus_its_mean(path, channels: int = 16) -> None:
    """A dynamic-batch Q/DQ graph: INT8 Conv, then ``y = x - mean(x)`` over H, W (SimAM's energy)."""
    from onnx import TensorProto, numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w"),
             nh.from_array(np.float32(0.02), "xs"), nh.from_array(np.int8(0), "zp"),
             nh.from_array(np.full(channels, 0.01, np.float32), "ws"), nh.from_array(np.zeros(channels, np.int8), "wzp")]
    nodes = [oh.make_node("QuantizeLinear", ["x", "xs", "zp"], ["xq"]), oh.make_node("DequantizeLinear", ["xq", "xs", "zp"], ["xd"]),
             oh.make_node("QuantizeLinear", ["w", "ws", "wzp"], ["wq"], axis=0),
             oh.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wd"], axis=0),
             oh.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             oh.make_node("ReduceMean", ["c"], ["m"], keepdims=1, axes=[2, 3]), oh.make_node("Sub", ["c", "m"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", channels, 8, 8])], inits)
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), str(path))


def test_int8_is_compiled_per_static_batch_where_dynamic_batch_computes_wrong_results(tmp_path):
    """OpenVINO 2026.4 returns ``x`` for ``x - mean(x)`` after an INT8 Conv when the batch is
    dynamic; the INT8 runner compiles one static model per batch size (LRU of STATIC_BATCHES)."""
    import onnxruntime as ort

    from edge_se.runtime.backends.openvino import STATIC_BATCHES, OpenVinoRunner, OvOptions

    path = tmp_path / "q.onnx"
    _int8_conv_minus_its_mean(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    runner = OpenVinoRunner(path, OvOptions("int8", threads=1))
    assert runner.inputs[0].batch_range == (1, None)
    batches = list(range(1, STATIC_BATCHES + 3))
    for n in batches:
        x = np.random.default_rng(n).standard_normal((n, 3, 8, 8)).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        got = runner.infer({"x": x})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert runner.describe()["static_batches"] == batches[-STATIC_BATCHES:]
    assert len(runner._requests) == STATIC_BATCHES  # the dropped models' requests went with them
    runner.close()
