"""INT8 latency on ONNX Runtime CPU: se_resnet50 and resnet50 at 1x3x224x224, FP32 vs each INT8 flavour.

Models are seeded random inits (no weights are downloaded; speed does not depend on the weights),
calibrated once on 16 crops of scikit-learn's sample photos (min-max). Variants:

* ``fp32``: model.onnx as exported (simplified);
* ``cpu qdq u8s8``: the CPU-fast flavour (model.int8.cpu.onnx), policy ``all``;
* ``cpu qdq u8s8 keep-gates``: the same with the attention gates kept in float;
* ``cpu qdq u8s8 reduce_range``: 7-bit weights (for x86 CPUs without VNNI);
* ``cpu qoperator u8s8``: the same ranges as QOperator (QLinearConv ...) ops;
* ``trt qdq s8s8 symmetric``: the TensorRT-ready flavour, run on ORT CPU (not meant for it);
* ``cpu qdq s8s8 (all ops)``: a naive signed, symmetric QDQ of every op;
* ``cpu qdq u8s8 + pre-process``: ONNX Runtime's ``quant_pre_process`` before quantizing.

Median latency over ``--runs`` single-image runs after warm-up, at each of ``--threads`` intra-op
thread counts.

    python benchmarks/int8_speed.py --threads 1 --runs 30

``--bundle B`` times instead what ``edge-se quantize B --precision int8 --calib ...`` published with
its defaults (policy ``auto``, ``--method auto``, GPTQ): ``model.onnx`` against
``model.int8.cpu.onnx`` and ``model.int8.trt.onnx``, with each file's INT8 MAC share and budget
verdict from the manifest and the stage's recorded time per phase.

    python benchmarks/int8_speed.py --bundle b/se50 --threads 1 2 --runs 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {"se_resnet50": "se_resnet50", "resnet50": "torchvision:resnet50"}


def _median_ms(path: Path, x: np.ndarray, threads: int, runs: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle
    from edge_se.preprocess import PreprocessSpec
    from edge_se.quantize._ort import quantize_with_ranges
    from edge_se.quantize.cpu_int8 import quantize_cpu
    from edge_se.quantize.policies import decide
    from edge_se.quantize.qdq_trt import quantize_trt
    from edge_se.quantize.ranges import collect_statistics
    from edge_se.quantize.stage import named_copy
    from edge_se.reference.inputs import sample_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--threads", type=int, nargs="+", default=[min(4, os.cpu_count() or 1)])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--bundle", help="time this quantized bundle's published INT8 files instead")
    args = ap.parse_args(argv)
    progress.set_quiet(True)
    if args.bundle:
        return bundle_speed(Path(args.bundle), args.threads, args.runs)

    calib = sample_images(16, PreprocessSpec())
    x = calib[:1]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-se-speed-") as tmp:
        tmp = Path(tmp)
        for key in args.models:
            bundle = export_bundle(MODELS[key], (1, 3, 224, 224), tmp / key)
            fp32 = named_copy(bundle.root / "model.onnx", tmp / f"{key}.onnx")
            ranges = collect_statistics(fp32, [calib[i : i + 4] for i in range(0, 16, 4)]).ranges("minmax")
            variants = {"fp32": fp32}
            quantize_cpu(fp32, tmp / f"{key}.u8s8.onnx", ranges)
            variants["cpu qdq u8s8"] = tmp / f"{key}.u8s8.onnx"
            gates = decide("keep-gates", fp32).kept_nodes
            if gates:
                quantize_cpu(fp32, tmp / f"{key}.kg.onnx", ranges, gates)
                variants["cpu qdq u8s8 keep-gates"] = tmp / f"{key}.kg.onnx"
            quantize_cpu(fp32, tmp / f"{key}.rr.onnx", ranges, reduce_range=True)
            variants["cpu qdq u8s8 reduce_range"] = tmp / f"{key}.rr.onnx"
            quantize_cpu(fp32, tmp / f"{key}.qop.onnx", ranges, quant_format="qoperator")
            variants["cpu qoperator u8s8"] = tmp / f"{key}.qop.onnx"
            quantize_trt(fp32, tmp / f"{key}.trt.onnx", ranges)
            variants["trt qdq s8s8 symmetric"] = tmp / f"{key}.trt.onnx"
            quantize_with_ranges(fp32, tmp / f"{key}.s8s8.onnx", ranges, activation="int8", activation_symmetric=True)
            variants["cpu qdq s8s8 (all ops)"] = tmp / f"{key}.s8s8.onnx"
            # ONNX Runtime's quantization pre-processing (symbolic shapes + graph optimization)
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32), str(tmp / f"{key}.pre.onnx"))
            pre_ranges = collect_statistics(tmp / f"{key}.pre.onnx", [calib[i : i + 4] for i in range(0, 16, 4)])
            quantize_cpu(tmp / f"{key}.pre.onnx", tmp / f"{key}.preq.onnx", pre_ranges.ranges("minmax"))
            variants["cpu qdq u8s8 + pre-process"] = tmp / f"{key}.preq.onnx"
            for threads in args.threads:
                base = None
                for name, path in variants.items():
                    ms = _median_ms(path, x, threads, args.runs)
                    base = base or ms
                    rows.append((key, threads, name, ms, base / ms))
                    print(f"{key:12s} {threads}t {name:28s} {ms:8.1f} ms  x{base / ms:.2f}", flush=True)
    _table(rows, args.runs)
    return 0


def _table(rows: list[tuple], runs: int) -> None:
    print(f"\nONNX Runtime CPU, batch 1, median of {runs} runs (speed-up = FP32 median / variant median)")
    print(f"{'model':12s} {'threads':>7s} {'variant':28s} {'median':>11s}  speed-up")
    for key, threads, name, ms, ratio in rows:
        print(f"{key:12s} {threads:7d} {name:28s} {ms:8.1f} ms  x{ratio:.2f}")


def bundle_speed(root: Path, threads: list[int], runs: int) -> int:
    """FP32 against the INT8 files the quantize stage published in ``root``, as recorded."""
    from edge_se.bundle import Bundle
    from edge_se.runtime.cpu import cpu_model

    bundle = Bundle.open(root)
    shape = [int(d) for d in bundle.section("model")["input_shape"]]
    x = np.random.default_rng(0).standard_normal((1, *shape[1:])).astype(np.float32)
    files = ["model.onnx"] + [n for n in ("model.int8.cpu.onnx", "model.int8.trt.onnx") if n in bundle.artifacts]
    if len(files) == 1:
        print(f"{root} has no INT8 file: run 'edge-se quantize {root} --precision int8 --calib ...' first")
        return 2
    model = str(bundle.section("model").get("spec") or root.name)
    print(f"# {model} {shape}, CPU: {cpu_model()}")
    for name in files[1:]:
        rec = bundle.record(name)
        d = rec.decision
        share = f"{100 * d.int8_mac_share:.1f} %" if d and d.int8_mac_share is not None else "?"
        met = None if d is None else d.budget_met
        print(f"# {name}: policy {rec.policy}, INT8 MACs {share}, budget met: {met}, "
              f"kept float: {len(d.kept_blocks) if d else '?'} block(s)")
    timings = {k[len("quantize_"):]: v for k, v in bundle.manifest.get("timings", {}).items() if k.startswith("quantize_")}
    print("# quantize stage, seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    rows = []
    for t in threads:
        base = None
        for name in files:
            ms = _median_ms(bundle.verify(name), x, t, runs)
            base = base or ms
            rows.append((model, t, name, ms, base / ms))
            print(f"{model:12s} {t}t {name:28s} {ms:8.1f} ms  x{base / ms:.2f}", flush=True)
    _table(rows, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
