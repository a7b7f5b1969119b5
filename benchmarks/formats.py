#!/usr/bin/env python3
"""Every artifact format of one bundle, from one run: export time, file size, load time and p50
latency at batch 1 and 8, each through the edge-se runtime backend that runs it.

    python benchmarks/formats.py --model se_resnet50 --input-shape 1x3x224x224 --threads 2

Exports one bundle with ``--formats onnx,ts,pt2,aoti,pte`` (pte only when ExecuTorch is
installed: ``pip install 'edge-se[executorch]'``), then times each artifact. Export times are the
stage timings the manifest records (ONNX: trace + export + simplify; each torch.export format its
own step). With ExecuTorch, ``model.pt2`` is also quantized to ``model.int8.pte`` on ``--calib``
(the quantize stage's ``--pte`` step: PT2E with the XNNPACK quantizer, static batch 1, so its
batch-8 figure is 8 batch-1 calls) and its top-1 agreement and logit SQNR against ``model.onnx`` on
the calibration images are printed. Machines differ: report the printed CPU model with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = {"model.onnx": "onnxruntime", "model.ts": "torchscript", "model.pt2": "pt2",
            "model.aoti.pt2": "aoti", "model.pte": "executorch"}
EXPORT_KEYS = {"model.onnx": ("export", "simplify"), "model.ts": ("trace",), "model.pt2": ("torch_export",),
               "model.aoti.pt2": ("aoti",), "model.pte": ("pte",)}


def cpu_model() -> str:
    """The CPU's model name (edge_se.runtime.cpu reads /proc/cpuinfo)."""
    from edge_se.runtime.cpu import cpu_model as model

    return model()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="se_resnet50")
    ap.add_argument("--input-shape", default="1x3x224x224")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per batch size (after 3 warm-up runs)")
    ap.add_argument("--work", help="folder for the bundle (default: a temp folder)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--calib", default=str(Path(__file__).resolve().parents[1] / "calibration" / "sample-images.toml"),
                    help="calibration set for model.int8.pte (default: calibration/sample-images.toml)")
    args = ap.parse_args()

    import numpy as np

    from edge_se import progress
    from edge_se.export.checks import parse_input_shape
    from edge_se.export.pipeline import export_bundle
    from edge_se.runtime import Runtime

    progress.set_quiet(True)
    formats = "onnx,ts,pt2,aoti" + (",pte" if importlib.util.find_spec("executorch") else "")
    work = Path(args.work or tempfile.mkdtemp(prefix="edge-se-formats-"))
    out = work / f"{args.model}-formats"
    t0 = time.perf_counter()
    bundle = export_bundle(args.model, parse_input_shape(args.input_shape), out, formats=formats, force=True)
    total = time.perf_counter() - t0
    timings = bundle.manifest["timings"]
    print(f"# {args.model} {args.input_shape}, CPU: {cpu_model()}, threads {args.threads}; formats {formats}; "
          f"whole export {total:.0f} s", flush=True)
    rng = np.random.default_rng(0)
    shape = bundle.manifest["model"]["input_shape"]
    rows = []
    print("| artifact | backend | export s | size MB | load s | p50 b1 ms | p50 b8 ms |")
    print("|---|---|---|---|---|---|---|")

    def timed(name: str, backend: str, export_s: float, size: float, load, run) -> dict:
        t = time.perf_counter()
        handle = load()
        load_s = time.perf_counter() - t
        p50 = {}
        for b in (1, 8):
            x = rng.standard_normal((b, *shape[1:])).astype(np.float32)
            for _ in range(3):
                run(handle, x)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                run(handle, x)
                times.append(time.perf_counter() - t)
            p50[b] = statistics.median(times) * 1e3
        rows.append({"artifact": name, "backend": backend, "export_s": round(export_s, 1), "size_mb": round(size, 1),
                     "load_s": round(load_s, 2), "p50_b1_ms": round(p50[1], 2), "p50_b8_ms": round(p50[8], 2)})
        print(f"| {name} | {backend} | {export_s:.1f} | {size:.1f} | {load_s:.2f} | {p50[1]:.2f} | {p50[8]:.2f} |",
              flush=True)
        return rows[-1]

    for name, backend in BACKENDS.items():
        if name not in bundle.artifacts:
            continue
        size = sum(f["bytes"] for f in bundle.artifact(name)["files"]) / 1e6
        timed(name, backend, sum(timings.get(k, 0.0) for k in EXPORT_KEYS[name]), size,
              lambda n=name, b=backend: Runtime.load(out, backend=b, artifact=n, threads=args.threads, warmup=0),
              lambda rt, x: rt.run({"input": x}))
    if "model.pte" in bundle.artifacts:
        int8_pte(bundle, args.calib, work, timed)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_model(), "model": args.model, "rows": rows}, indent=2))
    return 0


def int8_pte(bundle, calib: str, work: Path, timed) -> None:
    """Quantize ``model.pt2`` to ``model.int8.pte`` as ``edge-se quantize --pte`` does, time it like
    the other rows and measure it against ``model.onnx`` on the calibration images."""

    from edge_se.calibration.build import calibration_from
    from edge_se.quantize import pte_int8
    from edge_se.reference.check import ort_runner, run_batched
    from edge_se.reference.metrics import logit_metrics

    calibration = calibration_from(calib, work / "calib", preprocessing=bundle.preprocessing())
    path = work / pte_int8.PTE_INT8_ARTIFACT
    t = time.perf_counter()
    record = pte_int8.write_int8_pte(bundle, calibration, path)
    export_s = time.perf_counter() - t
    row = timed(pte_int8.PTE_INT8_ARTIFACT, "executorch", export_s, path.stat().st_size / 1e6,
                lambda: pte_int8.runner(path, record), lambda fn, x: run_batched(fn, x, 1))
    x = calibration.array()
    got = run_batched(pte_int8.runner(path, record), x, 1)[0]
    ref = ort_runner(bundle.verify("model.onnx"))(x)[0]
    m = logit_metrics(ref, got)
    print(f"# {pte_int8.PTE_INT8_ARTIFACT} vs model.onnx on {len(x)} calibration images: top-1 agreement "
          f"{m['agreement']:.2f} %, logit SQNR {m['sqnr_db']:.1f} dB", flush=True)
    row.update(agreement=round(m["agreement"], 2), sqnr_db=round(m["sqnr_db"], 1), calibration=calib)


if __name__ == "__main__":
    sys.exit(main())
