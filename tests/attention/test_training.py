"""The modules train: in train mode a forward and backward give finite gradients for every weight."""

from __future__ import annotations

import pytest
import torch

from edge_se.attention import ATTENTION_TYPES, create_attn


@pytest.mark.parametrize("name", ATTENTION_TYPES)
def test_backward_reaches_every_parameter_with_finite_gradients(name, make_input):
    torch.manual_seed(0)
    m = create_attn(name, 32).train()
    x = make_input(4, 32, 8, 8).requires_grad_(True)
    m(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
