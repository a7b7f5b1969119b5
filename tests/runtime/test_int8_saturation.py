"""x86 CPUs without VNNI saturate 8-bit INT8 weights in ONNX Runtime's and OpenVINO's kernels: the quantize stage
gives them 7-bit weights, and the runtime runs an 8-bit file's Q/DQ exactly there (and says so). The CPU's flags are
patched so every branch runs on any machine; the files are the quantize stage's own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_se.runtime import Runtime, cpu

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}


@pytest.mark.parametrize("flags, risky", [(AVX2_ONLY, True), (VNNI, False), (AVX2_ONLY | {"avx_vnni"}, False),
                                          (AVX2_ONLY | {"amx_int8"}, False), (frozenset({"asimd", "asimddp"}), False),
                                          (frozenset(), False)])
def test_which_cpus_saturate(flags, risky):
    assert (cpu.int8_saturation_risk(flags) is not None) == risky


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, small_calib_spec):
    """se_digits quantized twice by the real stage: as an AVX2-only CPU would (auto) and with 8-bit weights."""
    from edge_se.cli import main

    out = {}
    for name, extra in (("auto", []), ("eight_bit", ["--no-reduce-range"])):
        b = tmp_path_factory.mktemp(name) / "b"
        assert main(["-q", "export", "se_digits", "--out", str(b)]) == 0
        mp = pytest.MonkeyPatch()
        mp.setattr(cpu, "cpu_flags", lambda: AVX2_ONLY)
        try:
            assert main(["-q", "quantize", str(b), "--precision", "int8", "--calib", str(small_calib_spec),
                         "--policy", "all", "--weight-rounding", "nearest", *extra]) == 0
        finally:
            mp.undo()
        out[name] = b
    return out


def _reduce_range(bundle) -> bool:
    return json.loads((bundle / "manifest.json").read_text())["artifacts"]["model.int8.cpu.onnx"]["int8"]["reduce_range"]


def test_quantize_gives_an_avx2_only_cpu_seven_bit_weights_unless_told(quantized):
    assert _reduce_range(quantized["auto"]) is True
    assert _reduce_range(quantized["eight_bit"]) is False


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_an_eight_bit_file_runs_exactly_where_the_kernels_would_saturate(quantized, backend, monkeypatch):
    if backend == "openvino":
        pytest.importorskip("openvino", reason="needs openvino")
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_ONLY)
    with Runtime.load(quantized["eight_bit"], backend=backend, artifact="model.int8.cpu.onnx") as rt:
        notes = " ".join(rt.describe()["notes"])
        assert "no VNNI" in notes and "exactly in FP32" in notes
        exact = rt.predict(x)
    with Runtime.load(quantized["auto"], backend=backend, artifact="model.int8.cpu.onnx") as rt:
        assert "exactly in FP32" not in " ".join(rt.describe()["notes"])  # 7-bit weights cannot saturate
    monkeypatch.setattr(cpu, "cpu_flags", lambda: VNNI)
    with Runtime.load(quantized["eight_bit"], backend=backend, artifact="model.int8.cpu.onnx") as rt:
        assert "exactly in FP32" not in " ".join(rt.describe()["notes"])
    # the exact run is the file's Q/DQ arithmetic: ONNX Runtime with QDQ fusion off gives the same
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    sess = ort.InferenceSession(str(quantized["eight_bit"] / "model.int8.cpu.onnx"), so,
                                providers=["CPUExecutionProvider"])
    want = sess.run(None, {"input": x})[0]
    if backend == "onnxruntime":
        np.testing.assert_allclose(exact, want, rtol=1e-4, atol=1e-4)
    else:  # OpenVINO's FP32 Q/DQ rounds a few values one output step the other way
        step = float(np.max(np.abs(want))) / 127
        assert np.max(np.abs(exact - want)) <= 2 * step
