"""Fixtures for fidelity, matrix and report tests: small zoo ONNX files and one real matrix run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

DIGITS_SHAPE = (1, 1, 32, 32)


@pytest.fixture(scope="session")
def zoo_model_onnx(tmp_path_factory) -> Callable[[str], tuple[object, Path]]:
    """``zoo_model_onnx(name)`` -> (seeded eval-mode module, its FP32 ONNX), cached per session."""
    import torch

    from edge_se.export.onnx_export import export_onnx
    from edge_se.models.registry import create_model

    root = tmp_path_factory.mktemp("fidelity")
    cache: dict[str, tuple[object, Path]] = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            module = create_model(name).eval()
            path = root / f"{name}.onnx"
            export_onnx(module, torch.zeros(DIGITS_SHAPE), path)
            cache[name] = (module, path)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def digit_inputs() -> np.ndarray:
    """32 real held-out digits (digits-hard), N x 1 x 32 x 32 float32."""
    from edge_se.data.digits import digits_hard

    x, _ = digits_hard(0, n_aug=1)
    return x[:32]


@pytest.fixture(scope="session")
def matrix_report(tmp_path_factory):
    """One real matrix run on an (untrained) se_digits bundle with sample images: fast, all stages."""
    from edge_se import progress
    from edge_se.export.pipeline import export_bundle
    from edge_se.validate.matrix import run_matrix

    progress.set_quiet(True)
    root = tmp_path_factory.mktemp("matrix")
    export_bundle("se_digits", DIGITS_SHAPE, root / "bundle")
    out = root / "report"
    report = run_matrix(root / "bundle", precisions=("fp32", "fp16", "int8"), policies=("all", "keep-gates"),
                        out=out, batch_sizes=(1, 4), limit=16, latency_seconds=0.2)
    return report, out
