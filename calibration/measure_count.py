"""How the calibration set (count, seed, augmentation) changes INT8 results on a digits model.

Exports a trained ``<attn>_digits`` checkpoint to ONNX (opset 17, dynamic batch), builds
calibration sets from the digits *train* split with edge-se's calibration code, quantizes with
ONNX Runtime's ``quantize_static`` (QDQ, uint8 activations, int8 per-channel weights; MinMax and
Percentile 99.999) and evaluates on ORT CPU: logit SQNR against FP32 on the 450 test digits,
test accuracy and digits-hard accuracy (9,000). Prints a Markdown table.

    python calibration/measure_count.py --attn se --checkpoint ckpt/se_digits.pt

Without --checkpoint the cached checkpoint (edge_se.data.cache) is used (trained if missing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def export_onnx(attn: str, ckpt: Path, out: Path) -> Path:
    import torch

    from edge_se.models.registry import create_model

    model = create_model(f"{attn}_digits")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 32, 32), out, opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return out


class _Reader:
    def __init__(self, x: np.ndarray, batch: int = 32):
        self._it = iter([{"input": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._it, None)


def quantize(fp32: Path, x_calib: np.ndarray, method: str, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cm = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]
    extra = {"CalibPercentile": 99.999} if method == "percentile" else {}
    quantize_static(str(fp32), str(out), _Reader(x_calib), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=cm, extra_options=extra)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attn", default="se")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--counts", default="16,64,256,1024")
    ap.add_argument("--seeds", default="0,1,2", help="selection seeds for the MinMax rows")
    args = ap.parse_args()

    import logging

    import onnxruntime as ort

    logging.getLogger().setLevel(logging.ERROR)  # ORT quantization's "consider pre-processing" notes

    from edge_se.calibration import calibration_from, parse_spec
    from edge_se.data import digits as D
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.quantize.metrics import sqnr_db

    ckpt = args.checkpoint or cached_digits_checkpoint(args.attn)
    work = Path(tempfile.mkdtemp(prefix="edge-se-calcount-"))
    fp32 = export_onnx(args.attn, ckpt, work / "fp32.onnx")
    x_test, y_test = D.digits_arrays("test")
    x_hard, y_hard = D.digits_hard()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1

    def run(path: Path, x: np.ndarray) -> np.ndarray:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": x[i : i + 500]})[0] for i in range(0, len(x), 500)])

    ref_test = run(fp32, x_test)
    print(f"checkpoint {ckpt}; FP32 ORT: test {np.mean(ref_test.argmax(1) == y_test):.2%}, "
          f"digits-hard {np.mean(run(fp32, x_hard).argmax(1) == y_hard):.2%}\n")
    print("| calibration set | method | seed | SQNR test (dB) | test acc | digits-hard acc "
          "| activation range: median / max |")
    print("|---|---|---|---:|---:|---:|---|")

    def row(name: str, x_calib: np.ndarray, method: str, seed: int | str) -> None:
        q = quantize(fp32, x_calib, method, work / f"q-{method}-{len(x_calib)}-{seed}.onnx")
        got = run(q, x_test)
        hard = run(q, x_hard)
        import onnx

        # activation scales are the scalar *_scale initializers (weights are per-channel vectors);
        # 255 * scale is the float range a uint8 activation covers
        ranges = [255 * float(onnx.numpy_helper.to_array(i)) for i in onnx.load(q).graph.initializer
                  if i.name.endswith("_scale") and not i.dims and i.name != "input_scale"]
        print(f"| {name} | {method} | {seed} | {sqnr_db(ref_test, got):.1f} | {np.mean(got.argmax(1) == y_test):.2%} "
              f"| {np.mean(hard.argmax(1) == y_hard):.2%} | {np.median(ranges):.2f} / {max(ranges):.1f} |", flush=True)

    counts = [int(c) for c in args.counts.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    for count in counts:
        for method in ("minmax", "percentile"):
            for seed in (seeds if method == "minmax" else seeds[:1]):
                spec = parse_spec({"source": {"kind": "digits", "split": "train"},
                                   "selection": {"count": count, "seed": seed, "method": "stratified"}},
                                  "measure_count", Path("."))
                calib = calibration_from(spec, out_cache=work / "calib")
                row(f"digits train, {count}", calib.array(), method, seed)
    # the same 256 digits under the digits-hard augmentations (noise, contrast, affine)
    spec = parse_spec({"source": {"kind": "digits"}, "selection": {"count": 256, "method": "stratified"}},
                      "measure_count", Path("."))
    x256 = calibration_from(spec, out_cache=work / "calib").array()
    x_aug = D.augment(x256, np.random.default_rng(0), D.HARD_AUGMENT)
    row("digits train, 256, hard-augmented", x_aug, "minmax", 0)
    row("digits train, 256, hard-augmented", x_aug, "percentile", 0)
    print(f"\n(work folder {work}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
