"""When the chosen ONNX exporter fails the other is tried; exporter noise goes to a log, never the terminal;
the dynamo exporter's opset 18 is brought down to the TensorRT 8.x ceiling (17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_se.cli import main

# A common CBAM implementation: the pooling window is computed from the input. The TorchScript-based
# exporter fails on it (and prints the whole Torch IR graph); torch's dynamo exporter exports it.
CBAM_SIZE_POOL = '''
import torch
import torch.nn.functional as F
from torch import nn


class ChannelGate(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c))

    def forward(self, x):
        avg = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        mx = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(mx)).unsqueeze(2).unsqueeze(3)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.gate = ChannelGate(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.gate(torch.relu(self.conv(x))).mean((2, 3)))


def build():
    return Net()
'''

NEITHER = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        e = torch.linalg.eigvals(self.conv(x).mean((2, 3)).reshape(-1, 2, 2))
        return e.real.reshape(x.shape[0], -1)


def build():
    return Net()
'''


def _model(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return f"{path}:build"


def test_the_other_exporter_takes_over_and_the_dump_goes_to_the_bundle_log(tmp_path, capfd):
    out = tmp_path / "b"
    assert main(["export", _model(tmp_path, "cbam_size_pool", CBAM_SIZE_POOL), "--input-shape", "1x3x32x32",
                 "--out", str(out)]) == 0
    printed = capfd.readouterr()
    assert "Torch IR graph" not in printed.out + printed.err and "%conv.weight" not in printed.out + printed.err
    notes = [ln for ln in printed.err.splitlines() if "trying the dynamo exporter" in ln]
    assert len(notes) == 1 and "torchscript exporter" in notes[0]
    record = json.loads((out / "manifest.json").read_text())["artifacts"]["model.onnx"]
    assert record["exporter"] == "dynamo" and record["exporter_fallback"]["requested"] == "torchscript"
    assert record["opset"] == 17 and "18 -> 17" in record["opset_conversion"]
    log = out / record["exporter_log"]["path"]
    assert "Torch IR graph" in log.read_text() and record["exporter_log"]["sha256"]
    import onnx

    assert next(o.version for o in onnx.load(str(out / "model.onnx")).opset_import if o.domain in ("", "ai.onnx")) == 17


def test_when_both_exporters_fail_one_line_names_both_and_the_log_sits_beside_out(tmp_path, capfd):
    out = tmp_path / "b"
    assert main(["-q", "export", _model(tmp_path, "neither", NEITHER), "--input-shape", "1x3x16x16",
                 "--out", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aten::linalg_eigvals" in err[0] and "the dynamo exporter failed too" in err[0]
    log = tmp_path / "b.export-failure.log"
    assert str(log) in err[0] and "== torchscript exporter" in log.read_text() and "== dynamo exporter" in log.read_text()
    assert not out.exists()
    # the next successful run into the same place leaves no stale failure log
    assert main(["-q", "export", "se_digits", "--out", str(out)]) == 0
    assert not log.exists()


def test_dynamo_opset_18_reduce_ops_come_down_to_17_with_equal_outputs(tmp_path):
    import onnx
    import onnxruntime as ort
    import torch

    from edge_se.export.opset import downconvert_opset

    class Reduce(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x.mean((2, 3)), x.amax((2, 3)), x.amin(2).sum(2)], 1)

    path = tmp_path / "r.onnx"
    torch.onnx.export(Reduce(), (torch.randn(2, 3, 8, 8),), str(path), dynamo=True, opset_version=18)
    model = onnx.load(str(path))
    converted, note = downconvert_opset(model, 17)
    assert note and "18 -> 17" in note
    assert next(o.version for o in converted.opset_import if o.domain in ("", "ai.onnx")) == 17
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)

    def run(m):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    np.testing.assert_array_equal(run(converted), run(model))
