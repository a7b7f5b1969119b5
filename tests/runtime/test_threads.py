"""predict is thread-safe: concurrent calls give exactly the single-threaded outputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edge_se.runtime import Runtime
from runtime_helpers import INPUT_SHAPE


def test_concurrent_predictions_equal_single_threaded(bundle_dir):
    rt = Runtime.load(bundle_dir, threads=1)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1 + i % 3, *INPUT_SHAPE[1:]), dtype=np.float32) for i in range(12)]
    expected = [rt.predict(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(rt.predict, inputs * 10))
    for i, out in enumerate(got):
        np.testing.assert_array_equal(out, expected[i % len(inputs)])


def test_concurrent_predictions_on_a_static_batch_model(static_bundle_dir):
    rt = Runtime.load(static_bundle_dir, threads=1)
    x = np.random.default_rng(3).standard_normal((3, *INPUT_SHAPE[1:]), dtype=np.float32)
    expected = rt.predict(x)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for out in pool.map(rt.predict, [x] * 16):
            np.testing.assert_array_equal(out, expected)
