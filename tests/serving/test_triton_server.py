"""A real Triton server (pytriton's ``tritonserver``, Python backend) serving an ``export-triton`` repository.

Run by ``scripts/ci_triton.sh`` in its own venv (nvidia-pytriton pins NumPy 1.x): the main
environment exports the bundle, this test writes the repository with ``edge-se export-triton
--serve python`` and checks the served model against ``Runtime.predict`` over HTTP and gRPC.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.triton_server
pytest.importorskip("pytriton", reason="needs nvidia-pytriton (its tritonserver); run scripts/ci_triton.sh")
http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[all]")
grpc = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[all]")

from edge_se.cli import main  # noqa: E402
from edge_se.runtime import Runtime  # noqa: E402
from edge_se.serving.local_server import local_triton  # noqa: E402

NAME = "se_py"
CLIENTS = 8


@pytest.fixture(scope="module")
def bundle() -> Path:
    path = os.environ.get("EDGE_SE_TRITON_BUNDLE")
    if not path:
        pytest.skip("EDGE_SE_TRITON_BUNDLE is not set: scripts/ci_triton.sh exports the bundle first")
    return Path(path)


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton") / "repo"
    # a long queue delay so that concurrent requests are merged into one execution
    assert main(["-q", "export-triton", str(bundle), "--out", str(repo), "--serve", "python", "--name", NAME,
                 "--max-batch", str(CLIENTS), "--max-queue-delay-us", "300000", "--ensemble"]) == 0
    with local_triton(repo, log_verbose=1) as s:
        yield s


@pytest.fixture(scope="module")
def runtime(bundle):
    return Runtime.load(bundle, backend="onnxruntime", artifact="model.onnx")


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 32, 32)).astype(np.float32)


def _http(server, x):
    client = http.InferenceServerClient(server.http_url)
    inp = http.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(NAME, [inp]).as_numpy("logits")


def test_http_outputs_equal_the_runtime(server, runtime):
    x = _x(3)
    np.testing.assert_allclose(_http(server, x), runtime.predict(x), rtol=1e-6, atol=1e-6)


def test_grpc_outputs_equal_the_runtime(server, runtime):
    x = _x(5, seed=1)
    client = grpc.InferenceServerClient(server.grpc_url)
    inp = grpc.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_allclose(client.infer(NAME, [inp]).as_numpy("logits"), runtime.predict(x), rtol=1e-6, atol=1e-6)


def test_dynamic_batching_merges_concurrent_requests(server, runtime):
    client = http.InferenceServerClient(server.http_url)
    before = client.get_inference_statistics(NAME)["model_stats"][0]
    xs = [_x(1, seed=10 + i) for i in range(CLIENTS)]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(CLIENTS)

    def send(i: int) -> None:
        barrier.wait()
        results[i] = _http(server, xs[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = client.get_inference_statistics(NAME)["model_stats"][0]
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert inferences == CLIENTS and executions < CLIENTS, (inferences, executions)
    assert max(int(b["batch_size"]) for b in after["batch_stats"]) > 1
    for i, x in enumerate(xs):  # each client got its own rows back
        np.testing.assert_allclose(results[i], runtime.predict(x), rtol=1e-6, atol=1e-6)


def test_warmup_ran_when_the_model_loaded(server):
    assert f"model '{NAME}' instance" in server.log_text_now() and "running warmup sample 'zero_batch1'" in \
        server.log_text_now()


def test_malformed_request_gets_triton_error_and_server_lives(server, runtime):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="unexpected shape for input 'input'"):
        _http(server, np.zeros((1, 2, 32, 32), np.float32))
    with pytest.raises(InferenceServerException):
        client = http.InferenceServerClient(server.http_url)
        inp = http.InferInput("input", [1, 1, 32, 32], "INT32")
        inp.set_data_from_numpy(np.zeros((1, 1, 32, 32), np.int32))
        client.infer(NAME, [inp])
    assert http.InferenceServerClient(server.http_url).is_server_ready()
    x = _x(2, seed=3)
    np.testing.assert_allclose(_http(server, x), runtime.predict(x), rtol=1e-6, atol=1e-6)


def test_non_finite_input_is_an_error_response_not_a_crash(server):
    """The runtime warns on NaN by default; strict or not, the server must answer and live on."""
    x = _x(1)
    x[0, 0, 0, 0] = np.nan
    out = _http(server, x)  # the runtime warns and runs; Triton returns the result
    assert out.shape == (1, 10)
    assert http.InferenceServerClient(server.http_url).is_server_ready()


def _encoded(tmp_path: Path) -> list[Path]:
    """Real encoded files the way a camera client sends them: a PNG (grey) and a JPEG (colour, other size)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(png)
    ramp = np.linspace(0, 255, 48 * 40, dtype=np.float32).reshape(40, 48)
    Image.fromarray(np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], -1).astype(np.uint8), "RGB").save(jpg)
    return [png, jpg]


def _bytes_input(module, paths: list[Path]):
    data = np.array([[p.read_bytes()] for p in paths], dtype=np.object_)
    inp = module.InferInput("IMAGE", list(data.shape), "BYTES")
    inp.set_data_from_numpy(data)
    return inp


def test_ensemble_applies_the_bundles_preprocessing_to_encoded_images(server, runtime, tmp_path):
    paths = _encoded(tmp_path)
    want = runtime.predict([str(p) for p in paths])  # the runtime decodes and preprocesses the same files
    got_http = http.InferenceServerClient(server.http_url).infer(f"{NAME}_ensemble", [_bytes_input(http, paths)])
    got_grpc = grpc.InferenceServerClient(server.grpc_url).infer(f"{NAME}_ensemble", [_bytes_input(grpc, paths)])
    np.testing.assert_allclose(got_http.as_numpy("logits"), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_grpc.as_numpy("logits"), want, rtol=1e-6, atol=1e-6)


def test_ensemble_request_with_bytes_that_are_no_image_gets_an_error(server, runtime, tmp_path):
    from tritonclient.utils import InferenceServerException

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(InferenceServerException, match="cannot decode image 0 of the request"):
        http.InferenceServerClient(server.http_url).infer(f"{NAME}_ensemble", [_bytes_input(http, [junk])])
    paths = _encoded(tmp_path)
    got = http.InferenceServerClient(server.http_url).infer(f"{NAME}_ensemble", [_bytes_input(http, paths[:1])])
    np.testing.assert_allclose(got.as_numpy("logits"), runtime.predict([str(paths[0])]), rtol=1e-6, atol=1e-6)
