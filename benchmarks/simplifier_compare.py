#!/usr/bin/env python3
"""onnxslim vs onnxsim on the zoo: node count, time, and output parity with the raw export.

    python benchmarks/simplifier_compare.py                # every zoo model at 1x3x64x64 (digits 1x1x32x32)
    python benchmarks/simplifier_compare.py se_resnet50 --size 224

For each model: export once (TorchScript-based exporter, opset 17, dynamic batch), then run each
simplifier on the same ModelProto and compare ORT outputs with the unsimplified graph.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="zoo names (default: all but se_resnet101/152)")
    ap.add_argument("--size", type=int, default=64, help="input resolution for 3-channel models")
    args = ap.parse_args()

    import numpy as np
    import onnx
    import torch

    from edge_se.export.onnx_export import export_onnx
    from edge_se.export.simplify import simplify_model
    from edge_se.models.registry import list_models, model_info

    torch.set_num_threads(2)
    names = args.models or [n for n in list_models() if n not in ("se_resnet101", "se_resnet152")]
    rows = []
    for name in names:
        default = model_info(name).default_input_shape
        shape = tuple(default) if default and default[-1] <= 64 else (1, 3, args.size, args.size)
        torch.manual_seed(0)
        module = model_info(name).entrypoint().eval()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.onnx"
            export_onnx(module, torch.zeros(shape), raw)
            model = onnx.load(str(raw))
        feeds = {model.graph.input[0].name: np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)}
        row = {"model": name, "raw": len(model.graph.node)}
        for simp in ("onnxslim", "onnxsim"):
            t0 = time.perf_counter()
            _, rec = simplify_model(model, feeds, simp)
            row[simp] = rec.get("nodes_after") if rec.get("used") else f"kept raw ({rec.get('reason', '')[:40]})"
            row[f"{simp}_s"] = time.perf_counter() - t0
            row[f"{simp}_err"] = rec.get("check", {}).get("max_abs")
        rows.append(row)
        print(f"{name:<22} raw {row['raw']:>4}  onnxslim {row['onnxslim']!s:>4} ({row['onnxslim_s']:.2f} s, err {row['onnxslim_err']:.1e})"
              f"  onnxsim {row['onnxsim']!s:>4} ({row['onnxsim_s']:.2f} s, err {row['onnxsim_err']:.1e})", flush=True)
    for simp in ("onnxslim", "onnxsim"):
        ok = [r for r in rows if isinstance(r[simp], int)]
        ratio = statistics.median(r[simp] / r["raw"] for r in ok) if ok else float("nan")
        print(f"{simp}: simplified {len(ok)}/{len(rows)} models, median nodes after/before {ratio:.3f}, "
              f"median time {statistics.median(r[f'{simp}_s'] for r in rows):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
