#!/usr/bin/env python3
"""Export every zoo model as FP32 ONNX and TensorRT-ready INT8 Q/DQ ONNX for the TensorRT build test.

Writes ``OUT/<name>.onnx`` and ``OUT/<name>.int8.qdq.onnx`` (dynamic batch, small resolution) and
``OUT/models.json``, and ``OUT/e2e-bundle``: a bundle the edge-se stages themselves wrote (export,
quantize fp16 and int8 calibrated from the digits calibration set) for the end-to-end build test.
Runs in the main environment (torch, onnxruntime); the build test then runs in
a separate environment with TensorRT for RTX (scripts/ci_trt_rtx.sh). Q/DQ comes from ONNX
Runtime's static quantizer (QDQ format, symmetric INT8 activations and per-channel weights: the
form TensorRT wants; biases left in float, since TensorRT refuses INT32 DequantizeLinear; only
Conv/Gemm/MatMul inputs quantized), calibrated on seeded noise: the test checks that the graphs build, not accuracy.

    python scripts/make_trt_test_models.py OUT [--size 64] [--only se_resnet18,...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def export(name: str, out: Path, size: int) -> dict:
    import torch

    from edge_se.models import create_model, model_info
    from edge_se.quantize.fp16 import convert_fp16

    info = model_info(name)
    c, h, w = (info.default_input_shape or (1, 3, size, size))[1:]
    if h > size:  # the ResNets: a small resolution keeps the export and build fast
        h = w = size
    model = create_model(name).eval()
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
    fp32 = out / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(fp32), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    qdq = out / f"{name}.int8.qdq.onnx"
    quantize_qdq(fp32, qdq, (c, h, w))
    fp16 = out / f"{name}.fp16.onnx"
    convert_fp16(fp32, fp16)  # edge-se's converter: FP32 I/O and overflow-prone ops behind Casts
    return {"name": name, "fp32": fp32.name, "fp16": fp16.name, "int8_qdq": qdq.name, "input_shape": [2, c, h, w]}


def quantize_qdq(src: Path, dst: Path, chw: tuple[int, int, int]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{"input": rng.standard_normal((1, *chw)).astype(np.float32)} for _ in range(4)])

        def get_next(self):  # noqa: ANN201 - ORT's interface
            return next(self.items, None)

    # Q/DQ on the inputs of Conv/Gemm/MatMul only (NVIDIA's recommended placement): quantizing the
    # scalar constants of elementwise ops (SimAM's, BAM's) gives graphs TensorRT refuses to build.
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   "QuantizeBias": False})  # TensorRT rejects INT32 bias DequantizeLinear


def e2e_bundle(out: Path) -> Path:
    """``out/e2e-bundle``: se_digits exported, then quantized fp16 and int8, by the edge-se stages."""
    import shutil

    from edge_se.cli import main as cli

    root = Path(__file__).resolve().parents[1]
    bundle = out / "e2e-bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    for args in (["export", "se_digits", "--formats", "onnx", "--out", str(bundle)],
                 ["quantize", str(bundle), "--precision", "fp16"],
                 ["quantize", str(bundle), "--precision", "int8", "--calib", str(root / "calibration" / "digits.toml")]):
        code = cli(["-q", *args])
        if code != 0:
            raise SystemExit(f"edge-se {' '.join(args)} exited {code}")
    return bundle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated model names (default: the whole zoo)")
    args = ap.parse_args()
    import torch

    from edge_se.models import list_models

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list_models()
    models = [export(n, args.out, args.size) for n in names]
    (args.out / "models.json").write_text(json.dumps(models, indent=1))
    print(f"wrote {e2e_bundle(args.out)}")
    print(f"exported {len(models)} models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
