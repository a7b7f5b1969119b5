"""ExecuTorch .pte export (XNNPACK) and the ExecuTorch runtime backend, on real zoo models."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("executorch", reason="needs the optional 'executorch' package (1.5.x with torch 2.14.x)")

import torch  # noqa: E402

from edge_se.errors import BundleError, InputError  # noqa: E402
from edge_se.export.pte import export_pte  # noqa: E402
from edge_se.models import create_model  # noqa: E402
from edge_se.runtime.backends.base import TensorSpec  # noqa: E402
from edge_se.runtime.backends.executorch import ExecuTorchRunner  # noqa: E402

F32 = np.dtype("float32")


def _export(name, shape, out, max_batch, calibration=None):
    model = create_model(name).eval()
    ep = torch.export.export(model, (torch.randn(2, *shape[1:]),),
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    info = export_pte(ep, out, max_batch=max_batch, calibration=calibration)
    return model, info


def _runner(path, shape, classes=10):
    ins = [TensorSpec("input", (None, *shape[1:]), F32)]
    outs = [TensorSpec("logits", (None, classes), F32)]
    return ExecuTorchRunner(path, ins, outs, threads=2)


def _rel(ref, got):
    return float(np.abs(ref - got).max() / np.abs(ref).max())


def _sqnr(ref, got):
    return float(10 * np.log10((ref ** 2).sum() / ((ref - got) ** 2).sum()))


@pytest.fixture(scope="module")
def digits_pte(tmp_path_factory):
    path = tmp_path_factory.mktemp("pte") / "se_digits.pte"
    model, info = _export("se_digits", (1, 1, 32, 32), path, max_batch=8)
    return model, info, path


def test_fp32_digits_matches_eager(digits_pte):
    model, info, path = digits_pte
    assert info["precision"] == "fp32" and info["delegate"] == "xnnpack"
    assert info["batch_range"] == [1, 8]
    assert info["exporter"].startswith("executorch ")
    assert 0.9 < info["delegated_fraction"] <= 1.0
    runner = _runner(path, (1, 1, 32, 32))
    assert runner.describe()["batch_range"] == [1, 8]
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8):  # 8: the bound is planned, not XNNPACK's refined 15 or less
        x = rng.standard_normal((batch, 1, 32, 32), dtype=np.float32)
        got = runner.infer({"input": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 10)
        assert _rel(ref, got) < 1e-4
    runner.close()


def test_batch_outside_range_raises_input_error(digits_pte):
    _, _, path = digits_pte
    runner = _runner(path, (1, 1, 32, 32))
    with pytest.raises(InputError, match=r"batch 9 is outside .*\[1, 8\].*re-export"):
        runner.infer({"input": np.zeros((9, 1, 32, 32), np.float32)})
    with pytest.raises(InputError, match="must be Nx1x32x32"):
        runner.infer({"input": np.zeros((1, 1, 16, 16), np.float32)})


def test_corrupt_pte_is_one_line_bundle_error(tmp_path):
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a flatbuffer" * 64)
    with pytest.raises(BundleError) as info:
        _runner(bad, (1, 1, 32, 32))
    assert "\n" not in str(info.value) and "bad.pte" in str(info.value)


def test_int8_digits_sqnr(tmp_path):
    rng = np.random.default_rng(1)
    calib = [rng.standard_normal((8, 1, 32, 32), dtype=np.float32) for _ in range(4)]
    model, info = _export("se_digits", (1, 1, 32, 32), tmp_path / "q.pte", max_batch=16, calibration=calib)
    assert info["precision"] == "int8"
    x = rng.standard_normal((16, 1, 32, 32), dtype=np.float32)
    got = _runner(tmp_path / "q.pte", (1, 1, 32, 32)).infer({"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert _sqnr(ref, got) > 20  # measured 31.7 dB


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet18", "cbam_resnet18", "sk_resnet18"])
def test_fp32_resnet18_family(tmp_path, name):
    shape = (1, 3, 64, 64)
    model, info = _export(name, shape, tmp_path / f"{name}.pte", max_batch=4)
    runner = _runner(tmp_path / f"{name}.pte", shape, classes=1000)
    x = np.random.default_rng(2).standard_normal((3, *shape[1:]), dtype=np.float32)
    got = runner.infer({"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert _rel(ref, got) < 1e-4


def test_quantize_pte_writes_an_int8_pte_from_the_calibration_set_that_the_runtime_runs(tmp_path, small_calib_spec):
    """The user's command on a trained cbam_digits bundle (its shared channel MLP needs unshared
    weights, edge_se.export.pte.unshare_weights): `edge-se quantize --precision int8 --pte`."""
    from edge_se.bundle import Bundle
    from edge_se.cli import main
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.data.digits import digits_arrays
    from edge_se.export.pipeline import export_bundle
    from edge_se.quantize.metrics import run_onnx
    from edge_se.reference.metrics import logit_metrics
    from edge_se.runtime import Runtime

    b = export_bundle("cbam_digits", None, tmp_path / "b", checkpoint=cached_digits_checkpoint("cbam"),
                      formats="onnx,pt2").root
    rc = main(["quantize", str(b), "--precision", "int8", "--calib", str(small_calib_spec), "--policy", "all",
               "--method", "minmax", "--weight-rounding", "nearest", "--pte", "--json"])
    assert rc == 0
    bundle = Bundle.open(b)
    rec = bundle.artifact("model.int8.pte")
    assert rec["format"] == "executorch" and rec["precision"] == "int8" and rec["source"] == "model.pt2"
    assert rec["batch_range"] == [1, 1]  # static: see edge_se.quantize.pte_int8.STATIC_BATCH
    assert rec["calibration"]["samples"] == 64
    assert rec["calibration"]["set_sha256"] == bundle.artifact("model.int8.cpu.onnx")["calibration"]["set_sha256"]
    assert rec["delegated_fraction"] > 0.9
    assert bundle.verify("model.int8.pte").stat().st_size < 0.5 * bundle.verify("model.onnx").stat().st_size  # int8 weights
    checks = [c for c in bundle.manifest["checks"] if c["artifact"] == "model.int8.pte"]
    assert {c["backend"] for c in checks if c["name"].startswith("numerics/")} == {"executorch"}
    assert {c["batch"] for c in checks if c["name"].startswith("numerics/")} == {1, 4}
    assert checks and all(c["passed"] for c in checks)

    x, y = digits_arrays("test")
    x = x[:200]
    with Runtime.load(b, backend="executorch", precision="int8") as rt:
        assert rt.describe()["artifact"] == "model.int8.pte"
        got = rt.predict(x)  # 200 rows, run one at a time
    m = logit_metrics(run_onnx(bundle.verify("model.onnx"), x), got, y[:200])
    assert 20 < m["sqnr_db"] < 60, m  # quantized (not FP32), and close to it
    assert m["agreement"] >= 97 and m["accuracy"] >= 90, m
