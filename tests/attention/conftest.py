"""Fixtures for the attention zoo tests: seeded inputs and modules with non-trivial weights."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN running statistic seeded, non-default values; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module.eval()


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def randomized() -> Callable[..., nn.Module]:
    """``randomized(module, seed=0)``: the module with seeded random weights and BN stats, in eval mode."""
    return _randomize


@pytest.fixture
def make_input() -> Callable[..., torch.Tensor]:
    """``make_input(b, c, h, w, seed=0)``: a seeded float32 NCHW tensor."""

    def make(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))

    return make
