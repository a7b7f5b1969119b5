"""Fixtures for the gate-pattern tests: ONNX files exported once per session from real models."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture(scope="session")
def onnx_of(tmp_path_factory) -> Callable[..., Path]:
    """``onnx_of(key, build, shape)`` -> path of ``build()`` exported at ``shape`` (cached by key)."""
    import torch

    from edge_se.export.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("patterns")
    cache: dict[str, Path] = {}

    def get(key: str, build: Callable[[], "torch.nn.Module"], shape: tuple[int, ...]) -> Path:
        if key not in cache:
            torch.manual_seed(0)
            module = build().eval()
            out = root / f"{key}.onnx"
            export_onnx(module, torch.randn(*shape), out)
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture(scope="session")
def zoo_onnx(onnx_of) -> Callable[[str], Path]:
    """``zoo_onnx(name)``: a zoo model exported at a small input size."""
    from edge_se.models.registry import create_model

    def get(name: str) -> Path:
        shape = (1, 1, 32, 32) if name.endswith("_digits") else (1, 3, 64, 64)
        return onnx_of(name, lambda: create_model(name), shape)

    return get
