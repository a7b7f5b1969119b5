"""trtexec-style latency statistics (the GPU numerics themselves are in test_gpu.py)."""

from __future__ import annotations

import time

from edge_se.tensorrt.validation import latency_stats


def test_latency_reports_trtexec_percentiles_in_order():
    calls = []
    stats = latency_stats(lambda: (calls.append(1), time.sleep(0.0005)), iterations=30, warmup=5)
    assert len(calls) == 35 and stats["iterations"] == 30
    assert stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["min_ms"] >= 0.5
