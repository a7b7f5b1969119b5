"""Suite-wide fixtures: exported bundles and trained digits checkpoints, cached per run.

Trained digits checkpoints are cached in ``$EDGE_SE_CACHE`` (set once per CI run by .ci/run) so
they are trained once per run, not once per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    os.environ.setdefault("EDGE_SE_CACHE", str(Path(config.rootpath) / ".cache" / "edge-se"))
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
    except ImportError:
        pass


@pytest.fixture(scope="session")
def export_cached(tmp_path_factory):
    """``export_cached(spec, shape)`` -> Bundle, exported once per session per (spec, shape)."""
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    cache: dict = {}
    root = tmp_path_factory.mktemp("bundles")

    def get(spec: str, shape: tuple[int, ...] = (1, 3, 64, 64), **kw):
        key = (spec, tuple(shape), tuple(sorted(kw.items())))
        if key not in cache:
            name = f"{spec.replace(':', '_').replace('/', '_')}-{'x'.join(map(str, shape))}-{len(cache)}"
            cache[key] = export_bundle(spec, shape, root / name, **kw)
        return cache[key]

    return get
