"""Quantization-aware distillation: the INT8 file interpreted in PyTorch is the model that runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge_se.errors import InputError
from edge_se.quantize import flavours
from edge_se.quantize.metrics import run_onnx
from edge_se.reference.metrics import sqnr_db
from edge_se.quantize.onnx_torch import QDQModule
from edge_se.quantize.qad import simulated
from edge_se.quantize.ranges import collect_statistics
from edge_se.quantize.stage import named_copy


@pytest.fixture(scope="module")
def se_files(export_cached, small_calib, tmp_path_factory):
    """The FP32 model and both INT8 files of a seeded-init se_digits, as the builders write them."""
    tmp = tmp_path_factory.mktemp("qad")
    fp32 = named_copy(export_cached("se_digits", (1, 1, 32, 32)).verify("model.onnx"), tmp / "fp32.onnx")
    ranges = collect_statistics(fp32, small_calib.batches(16)).ranges("minmax")
    files = {}
    for flavour in flavours.FLAVOURS:
        files[flavour] = tmp / f"{flavour}.onnx"
        flavours.builder(flavour, ranges, None)(fp32, files[flavour], [])
    return fp32, files


def test_the_simulation_reproduces_onnx_runtime_on_fp32_and_both_int8_files(se_files, small_calib):
    fp32, files = se_files
    x = small_calib.array()
    assert sqnr_db(run_onnx(fp32, x), simulated(QDQModule(onnx.load(str(fp32)), trainable=False), x)) > 80.0
    for flavour, path in files.items():
        deployed = run_onnx(path, x)  # fused integer kernels (QLinearConv, ...)
        sim = simulated(QDQModule(onnx.load(str(path))), x)
        assert sqnr_db(deployed, sim) > 35.0, flavour
        assert sqnr_db(deployed, sim) > sqnr_db(run_onnx(fp32, x), deployed) + 5.0, flavour  # much closer than FP32


def test_every_weighted_layer_is_trainable_and_written_back_on_its_grid(se_files, tmp_path):
    import torch

    _, files = se_files
    model = onnx.load(str(files["cpu"]))
    mod = QDQModule(model)
    n_weighted = sum(n.op_type in ("Conv", "Gemm") for n in model.graph.node)
    assert len(mod.parameters()) == 2 * n_weighted  # a weight and a bias each
    with torch.no_grad():
        for p in mod.parameters():
            p.add_(0.3)  # off the grid
    out = mod.write_back()
    ints = {i.name: i for i in out.graph.initializer if i.data_type in (3, 6)}  # int8 weights, int32 biases
    assert ints and all(name in mod.params for name in ints if name.endswith("_quantized"))
    onnx.checker.check_model(out)
    path = tmp_path / "moved.onnx"
    onnx.save_model(out, str(path))
    assert np.isfinite(run_onnx(path, np.zeros((2, 1, 32, 32), np.float32))).all()


def test_an_unsupported_operator_is_refused_by_name():
    from onnx import TensorProto, helper

    node = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    with pytest.raises(InputError, match="Einsum"):
        QDQModule(helper.make_model(graph))


def test_quantize_finetune_records_the_training_and_the_simulation_fidelity(export_cached, copy_bundle, small_calib):
    from edge_se.quantize.stage import quantize_int8

    bundle = quantize_int8(copy_bundle(export_cached("se_digits", (1, 1, 32, 32))), small_calib, policy="all",
                           weight_rounding="nearest", finetune=True, finetune_epochs=2)
    for name in ("model.int8.cpu.onnx", "model.int8.trt.onnx"):
        rec = bundle.artifact(name)["finetune"]
        assert rec["epochs"] == 2 and rec["images"] == 32 and rec["trained_tensors"] > 0
        assert rec["sim_vs_deployed_sqnr_db"]["after"] > 30.0
        check = rec["check_sqnr_db"]
        assert set(check) == {"before", "after", "on"}
        assert rec["applied"] == (check["after"] > check["before"]) and (rec["applied"] or rec["reason"])
        bundle.verify(name)
    assert "quantize_finetune" in bundle.manifest["timings"]


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp16", "--finetune"], "--finetune only apply to --precision int8"),
    (["--precision", "int8", "--calib", "x.toml", "--finetune-epochs", "3"], "--finetune-epochs needs --finetune"),
])
def test_finetune_options_are_checked(export_cached, copy_bundle, capsys, argv, message):
    from edge_se.cli import main

    bundle = copy_bundle(export_cached("se_digits", (1, 1, 32, 32)))
    assert main(["quantize", str(bundle.root), *argv]) == 2
    assert message in capsys.readouterr().err
