"""Shared fixtures for the model zoo and loading tests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The CI box is a shared 2-core machine: keep each test to one intra-op thread."""
    torch.set_num_threads(1)


@pytest.fixture
def write_py(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a user model file (dedented source) into tmp_path and return its path."""

    def write(source: str, name: str = "user_model.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


TINY_NET = """
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, width: int = 4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.fc = nn.Linear(width, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))

    def build(width: int = 4):
        return TinyNet(width)
"""


@pytest.fixture
def tiny_file(write_py) -> Path:
    """A user model file with a zero-argument factory ``build`` returning TinyNet."""
    return write_py(TINY_NET, "tiny.py")
