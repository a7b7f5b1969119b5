"""TensorRT backend through the adapter (needs TensorRT and an NVIDIA GPU; skipped otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_se.errors import InputError
from edge_se.runtime import Runtime, tensorrt_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tensorrt_available(), reason="needs TensorRT and an NVIDIA GPU (none here)"),
]


@pytest.fixture
def engine_bundle(bundle_copy, tmp_path):
    from edge_se.tensorrt.build import build_bundle_engine
    from edge_se.tensorrt.recipe import parse_recipe

    recipe = parse_recipe(
        {"name": "gpu", "model": {"spec": "tiny_se", "input_shape": [2, 3, 64, 64], "batch": [1, 2, 8]},
         "target": {"name": "gpu", "tensorrt": ">=8.5"}, "precision": {"mode": "fp32"}},
        "test recipe", tmp_path,
    )
    build_bundle_engine(bundle_copy, recipe)
    return bundle_copy


def test_auto_picks_the_engine_and_matches_onnxruntime(engine_bundle, batch4):
    rt = Runtime.load(engine_bundle)
    assert rt.backend == "tensorrt"
    ref = Runtime.load(engine_bundle, backend="onnxruntime").predict(batch4)
    np.testing.assert_allclose(rt.predict(batch4), ref, rtol=1e-3, atol=1e-3)


def test_batch_outside_the_engine_profile_is_refused(engine_bundle):
    rt = Runtime.load(engine_bundle)
    with pytest.raises(InputError, match=r"batch 9 is outside the model's batch range \[1, 8\]"):
        rt.predict(np.zeros((9, 3, 64, 64), np.float32))


def test_threads_share_a_pool_of_contexts(engine_bundle, batch4):
    from concurrent.futures import ThreadPoolExecutor

    rt = Runtime.load(engine_bundle, max_contexts=2)
    expected = rt.predict(batch4)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for out in pool.map(rt.predict, [batch4] * 16):
            np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert rt.describe()["contexts"] <= 2
