"""Fixtures of the trust-boundary tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tensorrt.conftest import export_tiny


@pytest.fixture(scope="session")
def security_onnx(tmp_path_factory) -> Path:
    """The tiny SE model exported to ONNX by the project's own export helper."""
    return export_tiny(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
