"""find_attention_gates: gates found by ONNX graph pattern, on the zoo and on torchvision models."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edge_se.quantize.patterns import GateBlock, find_attention_gates, gate_node_names, module_path

ZOO_KIND = {
    "se": ["se"], "eca": ["eca"], "bam": ["bam"], "sk": ["sk"], "simam": ["simam"],
    "cbam": ["cbam_channel", "cbam_spatial"],
}
DIGITS = ["se_digits", "cbam_digits", "bam_digits", "sk_digits", "simam_digits", "eca_digits"]
RESNETS = ["se_resnet18", "cbam_resnet18", "bam_resnet18", "sk_resnet18", "simam_resnet18", "eca_resnet18"]


def _zoo_gates(name: str) -> dict[str, nn.Module]:
    """Gate module path -> module, from the PyTorch model itself."""
    from edge_se.attention import gate_modules, is_attention_module
    from edge_se.models.registry import create_model

    model = create_model(name)
    gates = {}
    for path, mod in model.named_modules():
        if is_attention_module(mod):
            for sub in gate_modules(mod):
                gates[f"{path}.{sub}"] = mod
    return gates


@pytest.mark.parametrize("name", DIGITS + RESNETS)
def test_one_block_per_gate_module_of_the_zoo(zoo_onnx, name):
    blocks = find_attention_gates(onnx.load(str(zoo_onnx(name))))
    assert len(blocks) == len(_zoo_gates(name))


@pytest.mark.parametrize("name", DIGITS + RESNETS)
def test_each_block_points_at_its_pytorch_gate_module(zoo_onnx, name):
    blocks = find_attention_gates(zoo_onnx(name))
    assert sorted(b.scope for b in blocks) == sorted(_zoo_gates(name))


@pytest.mark.parametrize("name", DIGITS)
def test_kinds_match_the_attention_type(zoo_onnx, name):
    attn = name.split("_")[0]
    kinds = Counter(b.kind for b in find_attention_gates(zoo_onnx(name)))
    assert set(kinds) == set(ZOO_KIND[attn])


def test_block_names_are_the_attention_module_paths(zoo_onnx):
    names = [b.name for b in find_attention_gates(zoo_onnx("cbam_resnet18"))]
    assert names[:2] == ["layer1.0.attn.channel_gate", "layer1.0.attn.spatial_gate"]
    assert len(set(names)) == len(names)


def test_block_spans_pool_to_rescaling_mul(zoo_onnx):
    model = onnx.load(str(zoo_onnx("se_resnet18")))
    by_name = {n.name: n for n in model.graph.node}
    block = find_attention_gates(model)[0]
    ops = [by_name[n].op_type for n in block.nodes]
    assert ops == ["ReduceMean", "Conv", "Relu", "Conv", "Sigmoid", "Mul"]
    mul = by_name[block.rescale_nodes[0]]
    assert block.gate_output in mul.input and block.scaled_input in mul.input


def test_torchvision_efficientnet_b0_has_16_se_blocks(onnx_of):
    import torchvision

    path = onnx_of("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(weights=None), (1, 3, 64, 64))
    blocks = find_attention_gates(path)
    assert len(blocks) == 16 and {b.kind for b in blocks} == {"se"}
    assert blocks[0].name == "features.1.0.block.1"


def test_torchvision_mobilenet_v3_small_se_uses_hardsigmoid(onnx_of):
    import torchvision

    path = onnx_of("mobilenet_v3_small", lambda: torchvision.models.mobilenet_v3_small(weights=None), (1, 3, 64, 64))
    blocks = find_attention_gates(path)
    assert len(blocks) == 9
    assert {b.gate_op for b in blocks} == {"HardSigmoid"} and {b.kind for b in blocks} == {"se"}


def test_plain_resnet18_has_no_gates(onnx_of):
    import torchvision

    path = onnx_of("resnet18", lambda: torchvision.models.resnet18(weights=None), (1, 3, 64, 64))
    assert find_attention_gates(path) == []


def test_silu_and_hardswish_are_activations_not_gates(onnx_of):
    class Swishy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.silu, self.hswish = nn.SiLU(), nn.Hardswish()

        def forward(self, x):
            y = self.hswish(self.silu(self.conv(x)))
            return (y * torch.sigmoid(y)).mean((2, 3))  # explicit Mul(x, Sigmoid(x))

    model = onnx.load(str(onnx_of("swishy", Swishy, (1, 3, 16, 16))))
    assert any(n.op_type == "Sigmoid" for n in model.graph.node)
    assert find_attention_gates(model) == []


def test_timm_selective_kernel_gates_are_found(onnx_of):
    timm = pytest.importorskip("timm")
    path = onnx_of("timm_skresnet18", lambda: timm.create_model("skresnet18", num_classes=10), (1, 3, 64, 64))
    blocks = find_attention_gates(path)
    assert len(blocks) == 8 and {b.kind for b in blocks} == {"sk"}


def _calibration_reader(name: str, shape):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    return Reader()


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", ["cbam_digits", "bam_digits", "sk_digits"])
def test_quantized_graphs_keep_the_same_blocks(zoo_onnx, tmp_path, name, fmt):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    import onnxslim

    src = tmp_path / f"{name}.slim.onnx"  # as the pipeline does: simplified before quantization
    onnx.save(onnxslim.slim(onnx.load(str(zoo_onnx(name)))), str(src))
    out = tmp_path / f"{name}.{fmt}.onnx"
    quantize_static(
        str(src), str(out), _calibration_reader("input", (1, 1, 32, 32)),
        quant_format=getattr(QuantFormat, fmt),
        activation_type=QuantType.QInt8 if fmt == "QDQ" else QuantType.QUInt8,
    )
    fp32 = find_attention_gates(src)
    int8 = find_attention_gates(out)
    assert [(b.name, b.kind) for b in int8] == [(b.name, b.kind) for b in fp32]
    if fmt == "QOperator":
        assert all(b.gate_output_quant is not None for b in int8)


def test_module_path_rebuilds_nested_scopes():
    assert module_path("/layer1/layer1.0/se/gate/Sigmoid") == "layer1.0.se.gate"
    assert module_path("/features/features.1/features.1.0/block/block.1/fc1/Conv") == "features.1.0.block.1.fc1"
    assert module_path("/Add") == ""
    assert module_path("Sigmoid_12") is None


def test_gate_node_names_lists_every_node_once(zoo_onnx):
    blocks = find_attention_gates(zoo_onnx("cbam_digits"))
    names = gate_node_names(blocks)
    assert len(names) == len(set(names)) == sum(len(b.nodes) for b in blocks)
    assert isinstance(blocks[0], GateBlock) and blocks[0].to_dict()["name"] == blocks[0].name
