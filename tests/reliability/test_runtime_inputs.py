"""Bad runtime inputs and options: one stderr line and exit 2 through the real CLI, or a clear API result.

Covers --cache-dir on a file, bench batches above the memory bound or the engine profile, an ONNX
file ONNX Runtime cannot load (sha256 updated to match), quantize --max-drop nan/inf/negative,
--precision contradicting --artifact, NaN/Inf inputs (warn once, refuse when strict) and batches
above the model's batch range (run in model-sized chunks). The bundle is exported by the real
export stage from a tiny SE model file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main

MODEL_SOURCE = '''
import torch
from torch import nn


class TinySE(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = y * torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return self.head(y.mean((2, 3)))


def build():
    torch.manual_seed(0)
    return TinySE()
'''
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A dynamic-batch bundle (model.onnx, model.ts, 4 labels) from the real export stage. Read-only."""
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    root = tmp_path_factory.mktemp("reliability-bundle")
    (root / "tiny_se.py").write_text(MODEL_SOURCE, encoding="utf-8")
    (root / "labels.txt").write_text("a\nb\nc\nd\n", encoding="utf-8")
    return export_bundle(f"{root / 'tiny_se.py'}:build", SHAPE, root / "bundle", labels=root / "labels.txt").root


@pytest.fixture
def bundle_copy(tmp_path, bundle) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


@pytest.fixture(scope="module")
def image() -> str:
    from sklearn.datasets import load_sample_images

    return str(load_sample_images().filenames[0])


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the real CLI in-process: (exit code, stdout, stderr)."""
    code = main(["-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def replace_onnx(root: Path, data: bytes) -> None:
    """Write ``data`` as model.onnx and update its sha256 in the manifest to match."""
    (root / "model.onnx").write_bytes(data)
    path = root / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    entry = manifest["artifacts"]["model.onnx"]["files"][0]
    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


# -- 1. --cache-dir on a file ------------------------------------------------------------------
@pytest.mark.parametrize("sub", ["", "sub"])
def test_cache_dir_on_a_file_exits_2_with_one_line(capsys, tmp_path, bundle, image, sub):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cache = afile / sub if sub else afile
    code, _, err = cli(capsys, "predict", str(bundle), image, "--cache-dir", str(cache))
    assert code == 2
    line = one_line(err)
    assert str(cache) in line and ("not a folder" in line or f"{afile} is a file" in line) and "--cache-dir" in line


# -- 2. bench --batch ----------------------------------------------------------------------------
def test_bench_batch_above_the_memory_bound_exits_2_before_allocating(capsys, bundle):
    code, _, err = cli(capsys, "bench", str(bundle), "--batch", "100000000", "--duration", "0.1")
    assert code == 2
    line = one_line(err)
    assert "batch 100000000" in line and "GiB" in line and "at most" in line


def test_bench_batch_above_the_engine_profile_exits_2(capsys, bundle, monkeypatch):
    from edge_se.runtime import Runtime

    load = Runtime.load

    def profiled(*args, **kwargs):  # the batch range a TensorRT engine's profile gives
        rt = load(*args, **kwargs)
        return _with_batch_range(rt, (1, 8))

    monkeypatch.setattr(Runtime, "load", profiled)
    code, _, err = cli(capsys, "bench", str(bundle), "--batch", "9", "--duration", "0.1")
    assert code == 2
    line = one_line(err)
    assert "--batch 9" in line and "[1, 8]" in line


# -- 3. an ONNX file ONNX Runtime cannot load ---------------------------------------------------
@pytest.mark.parametrize("command", ["predict", "bench"])
def test_truncated_onnx_with_matching_sha256_exits_2_naming_the_file(capsys, bundle_copy, image, command):
    replace_onnx(bundle_copy, (bundle_copy / "model.onnx").read_bytes()[:100])
    extra = [image] if command == "predict" else ["--duration", "0.1"]
    code, _, err = cli(capsys, command, str(bundle_copy), *extra)
    assert code == 2
    line = one_line(err)
    assert "ONNX Runtime cannot load the ONNX file" in line and "model.onnx" in line and "truncated" in line


def test_onnx_with_a_missing_external_initializer_gives_no_native_dump(capfd, bundle_copy):
    import onnx

    model = onnx.load(str(bundle_copy / "model.onnx"))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="weights.bin")
    replace_onnx(bundle_copy, model.SerializeToString())
    code = main(["-q", "bench", str(bundle_copy), "--duration", "0.1"])
    err = capfd.readouterr().err  # native (C++) log lines go to file descriptor 2
    assert code == 2
    line = one_line(err)
    assert "ONNX Runtime cannot load the ONNX file" in line and "model.onnx" in line


# -- 4. quantize --max-drop --------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-0.5"])
def test_quantize_max_drop_not_finite_or_negative_exits_2_first(capsys, bundle_copy, tmp_path, value):
    # refused before the bundle or the (here missing) calibration set is looked at
    code, _, err = cli(capsys, "quantize", str(bundle_copy), "--precision", "int8", "--calib",
                       str(tmp_path / "missing.toml"), "--policy", "auto", f"--max-drop={value}")
    assert code == 2
    line = one_line(err)
    assert "--max-drop" in line and f"got {float(value)}" in line
    assert not list(bundle_copy.glob("model.int8*"))


# -- 5. --precision contradicting --artifact ---------------------------------------------------
@pytest.mark.parametrize("command", ["predict", "bench"])
def test_precision_contradicting_artifact_exits_2(capsys, bundle, image, command):
    extra = [image] if command == "predict" else ["--duration", "0.1"]
    code, _, err = cli(capsys, command, str(bundle), *extra, "--precision", "fp16", "--artifact", "model.onnx")
    assert code == 2
    line = one_line(err)
    assert "fp16" in line and "model.onnx" in line and "fp32" in line
    # the artifact's own precision is no contradiction
    code, out, err = cli(capsys, command, str(bundle), *extra, "--precision", "fp32", "--artifact", "model.onnx")
    assert code == 0, err
    assert "model.onnx" in out


# -- 6. NaN/Inf inputs -------------------------------------------------------------------------
def _nan_batch() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((3, *SHAPE[1:]), dtype=np.float32)
    x[1, 2, 3, 4] = np.nan
    x[2, 0, 0, 0] = np.inf
    return x


def test_nan_input_warns_once_naming_the_input(bundle):
    from edge_se.runtime import Runtime

    rt = Runtime.load(bundle)
    message = r"input 'input' holds 1 NaN and 1 Inf value\(s\).*index \[1, 2, 3, 4\]"
    with pytest.warns(RuntimeWarning, match=message) as rec:
        rt.predict(_nan_batch())
    assert len([w for w in rec if "NaN" in str(w.message)]) == 1
    assert "\n" not in str(rec[0].message) and rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rt.run(_nan_batch())  # once per input and runtime
        rt.predict(np.zeros((2, *SHAPE[1:]), np.float32))


def test_nan_input_is_refused_when_strict(bundle):
    from edge_se.errors import InputError
    from edge_se.runtime import Runtime

    rt = Runtime.load(bundle, strict=True)
    with pytest.raises(InputError, match=r"input 'input' holds 1 NaN and 1 Inf") as e:
        rt.run(_nan_batch())
    assert "\n" not in str(e.value)
    assert rt.predict(np.ones((2, *SHAPE[1:]), np.float32)).shape == (2, 4)


def _inf_preprocessing(tmp_path: Path) -> str:
    spec = tmp_path / "inf.json"  # a std this small turns every pixel into Inf
    spec.write_text(json.dumps({"crop": [16, 16], "std": [1e-45, 1e-45, 1e-45]}), encoding="utf-8")
    return str(spec)


def test_predict_strict_refuses_inf_inputs_with_one_line(capsys, bundle, image, tmp_path):
    code, _, err = cli(capsys, "predict", str(bundle), image, "--preprocessing", _inf_preprocessing(tmp_path),
                       "--strict")
    assert code == 2
    assert "input 'input' holds 0 NaN and 768 Inf" in one_line(err)


def test_predict_warns_about_inf_inputs_on_one_line_by_default(capsys, bundle, image, tmp_path):
    code, _, err = cli(capsys, "predict", str(bundle), image, "--preprocessing", _inf_preprocessing(tmp_path))
    assert code == 0
    lines = [line for line in err.splitlines() if "Inf" in line]
    assert len(lines) == 1 and lines[0].startswith("edge-se predict: warning: input 'input' holds 0 NaN and 768 Inf")


# -- 7. a batch above the model's batch range --------------------------------------------------
class _Recorder:
    """Wraps a runner: reports ``batch_range`` for its inputs and records the batch of each call."""

    def __init__(self, runner, batch_range):
        from edge_se.runtime.backends.base import TensorSpec

        self._runner = runner
        self.inputs = [TensorSpec(s.name, s.shape, s.dtype, batch_range) for s in runner.inputs]
        self.calls: list[int] = []

    def infer(self, feeds):
        rows = {a.shape[0] for a in feeds.values()}
        lo, hi = self.inputs[0].batch_range
        assert len(rows) == 1 and lo <= min(rows) and (hi is None or max(rows) <= hi)
        self.calls.append(rows.pop())
        return self._runner.infer(feeds)

    def __getattr__(self, name):
        return getattr(self._runner, name)


def _with_batch_range(rt, batch_range):
    rt.runner = _Recorder(rt.runner, batch_range)
    return rt


@pytest.mark.parametrize("batch_range, n, calls", [((1, 8), 20, [8, 8, 4]), ((6, 8), 20, [8, 8, 6]),
                                                    ((1, 8), 10000, [8] * 1250)])
def test_batch_above_the_profile_runs_in_model_sized_chunks(bundle, batch_range, n, calls):
    from edge_se.runtime import Runtime

    x = np.random.default_rng(1).standard_normal((n, *SHAPE[1:]), dtype=np.float32)
    want = Runtime.load(bundle).run(x)["logits"]
    rt = _with_batch_range(Runtime.load(bundle, warmup=0), batch_range)
    got = rt.run(x)["logits"]
    assert rt.runner.calls == calls
    assert got.shape == (n, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_batch_above_the_memory_bound_runs_in_chunks(bundle, monkeypatch):
    from edge_se.runtime import Runtime, batching

    x = np.random.default_rng(2).standard_normal((25, *SHAPE[1:]), dtype=np.float32)
    want = Runtime.load(bundle).run(x)["logits"]
    monkeypatch.setattr(batching, "MAX_INPUT_BYTES", 10 * x[:1].nbytes)
    rt = _with_batch_range(Runtime.load(bundle, warmup=0), (1, None))
    np.testing.assert_allclose(rt.run(x)["logits"], want, rtol=1e-5, atol=1e-6)
    assert rt.runner.calls == [10, 10, 5]
