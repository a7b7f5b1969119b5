"""Suite-wide fixtures: exported bundles and trained digits checkpoints, cached per run.

Trained digits checkpoints are cached in ``$EDGE_SE_CACHE`` (set once per CI run by .ci/run) so
they are trained once per run, not once per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skip_rules import ALLOWED_SKIPS

_SKIPS: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_runtest_logreport(report):
    if report.skipped:
        _SKIPS.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report):
    if report.skipped:
        _SKIPS.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("EDGE_SE_STRICT_SKIPS") != "1":
        return
    bad = [(node, why) for node, why in _SKIPS if not ALLOWED_SKIPS.search(why)]
    if bad:
        lines = "\n".join(f"  {node}: {why}" for node, why in bad)
        print(f"\nEDGE_SE_STRICT_SKIPS: {len(bad)} test(s) skipped for a reason other than missing hardware or "
              f"their own CI job:\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


USER_MODEL_SOURCE = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def build():
    return Tiny()
'''


@pytest.fixture(scope="session")
def user_bundle(tmp_path_factory):
    """A bundle exported by the real export stage from a user model file (1x3x16x16, 4 labels).

    Returns ``(bundle_dir, model_file)``; tests copy the folder before changing it.
    """
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    root = tmp_path_factory.mktemp("user-bundle")
    model = root / "tiny_model.py"
    model.write_text(USER_MODEL_SOURCE)
    labels = root / "labels.txt"
    labels.write_text("cat\ndog\nbird\nfish\n")
    out = root / "bundle"
    export_bundle(f"{model}:build", (1, 3, 16, 16), out, labels=labels)
    return out, model


SMALL_DIGITS_SPEC = """
description = "64 training-augmented digits (tests)"
[source]
kind = "digits"
split = "train"
augment = "train"
[preprocessing]
crop = [32, 32]
resize = false
color = "GRAY"
mean = [0.5]
std = [0.5]
[selection]
count = 64
seed = 0
"""


@pytest.fixture(scope="session")
def small_calib_spec(tmp_path_factory) -> Path:
    """A calibration spec of 64 training-augmented digits (for the *_digits models), written to a file."""
    path = tmp_path_factory.mktemp("spec") / "small-digits.toml"
    path.write_text(SMALL_DIGITS_SPEC)
    return path
