#!/usr/bin/env python3
"""Requests/s and p50/p99 latency of one bundle through a live Triton server (gRPC, 1 and 8
concurrent clients, batch-1 requests) next to calling ``edge_se.runtime`` directly, from one run.

    # main environment: the bundle
    edge-se export se_resnet50 --input-shape 1x3x224x224 --formats onnx --out /tmp/b_se50
    # a venv with nvidia-pytriton + tritonclient[all] + edge-se (scripts/ci_triton.sh makes one)
    /tmp/edge-se-triton-venv/bin/python benchmarks/serving.py /tmp/b_se50 --requests 40

Triton serves the repository ``edge-se export-triton --serve python`` writes (pytriton's
``tritonserver`` has only the Python backend), so both rows run the same ONNX Runtime session
code; the difference is Triton's transport, queueing and dynamic batching. Machines differ:
report the printed CPU model with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _drive(clients: int, requests: int, call) -> dict:
    """``clients`` threads each sending ``requests`` batch-1 requests; latency per request in ms."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def worker(i: int) -> None:
        send = call()
        send()  # connection set-up and first-request costs outside the timing
        barrier.wait()
        for _ in range(requests):
            t = time.perf_counter()
            send()
            lat[i].append((time.perf_counter() - t) * 1e3)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    flat = [v for per in lat for v in per]
    return {"clients": clients, "requests": len(flat), "req_per_s": len(flat) / wall,
            "p50_ms": statistics.median(flat), "p99_ms": _percentile(flat, 99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--artifact", default="model.onnx")
    ap.add_argument("--requests", type=int, default=40, help="timed requests per client")
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--max-queue-delay-us", type=int, default=2000)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    import tritonclient.grpc as grpc

    from edge_se.cli import main as cli
    from edge_se.runtime import Runtime
    from edge_se.runtime.cpu import cpu_model
    from edge_se.serving.local_server import local_triton

    clients = [int(c) for c in args.clients.split(",")]
    runtime = Runtime.load(args.bundle, backend="onnxruntime", artifact=args.artifact)
    x = runtime.example_inputs(batch=1, seed=0)
    name, feed = next(iter(x.items()))
    rows = []
    for n in clients:
        rows.append({"path": "edge_se.runtime (in process)", **_drive(n, args.requests, lambda: lambda: runtime.run(x))})
    with tempfile.TemporaryDirectory() as work:
        repo = Path(work) / "repo"
        code = cli(["-q", "export-triton", str(args.bundle), "--out", str(repo), "--serve", "python",
                    "--artifact", args.artifact, "--name", "bench", "--max-batch", str(max(clients)),
                    "--max-queue-delay-us", str(args.max_queue_delay_us)])
        if code:
            return code
        with local_triton(repo) as server:
            def grpc_call():
                client = grpc.InferenceServerClient(server.grpc_url)
                inp = grpc.InferInput(name, list(feed.shape), "FP32")
                inp.set_data_from_numpy(feed)
                return lambda: client.infer("bench", [inp])

            for n in clients:
                rows.append({"path": "Triton gRPC (Python backend, edge_se.runtime)",
                             **_drive(n, args.requests, grpc_call)})
            stats = grpc.InferenceServerClient(server.grpc_url).get_inference_statistics("bench", as_json=True)
    model = stats["model_stats"][0]
    print(f"CPU: {cpu_model()}; bundle {args.bundle} ({args.artifact}), batch-1 requests, "
          f"max queue delay {args.max_queue_delay_us} us")
    print("| path | clients | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['clients']} | {r['req_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
    print(f"Triton: {model['inference_count']} inferences in {model['execution_count']} executions; batch sizes "
          + ", ".join(f"{b['batch_size']}x{b['compute_infer']['count']}" for b in model.get("batch_stats", [])))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_model(), "rows": rows, "triton": model}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
