"""Latency of a loaded :class:`~edge_se.runtime.Runtime`: p50/p90/p99 and throughput over a fixed time
(``edge-se bench`` and the validation matrix)."""

from __future__ import annotations

import threading
import time


def measure(rt, feeds: dict, duration: float, concurrency: int = 1) -> dict:
    """Call ``rt.run(feeds)`` from ``concurrency`` threads for ``duration`` s; latency stats in ms."""
    import numpy as np

    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + duration

    def worker(out: list[float]) -> None:
        while True:
            t0 = time.perf_counter()
            rt.run(feeds)
            t1 = time.perf_counter()
            out.append(t1 - t0)
            if t1 >= stop:
                return

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(lat,)) for lat in latencies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    lat_ms = np.array([x for lat in latencies for x in lat]) * 1e3
    batch = next(iter(feeds.values())).shape[0]
    p50, p90, p99 = np.percentile(lat_ms, [50, 90, 99])
    return {
        "batch": batch, "concurrency": concurrency, "calls": int(lat_ms.size), "seconds": round(wall, 3),
        "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(lat_ms.mean()), 3),
        "throughput_per_s": round(lat_ms.size * batch / wall, 2),
    }
