"""create_attn, is_attention_module and gate_modules: names, errors, and gate hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edge_se.attention import (
    ATTENTION_CLASSES, ATTENTION_TYPES, CBAM, ChannelGate, SelectiveKernel, SimAM, create_attn,
    gate_modules, is_attention_module,
)
from edge_se.errors import InputError


@pytest.mark.parametrize("name", [None, ""])
def test_no_attention_type_gives_identity(name):
    assert isinstance(create_attn(name, 64), nn.Identity)


def test_options_without_an_attention_type_are_refused():
    with pytest.raises(InputError, match="rd_ratio"):
        create_attn(None, 64, rd_ratio=0.25)


@pytest.mark.parametrize("name", ATTENTION_TYPES)
def test_create_attn_builds_a_shape_preserving_module_of_each_type(name, make_input):
    m = create_attn(name, 32).eval()
    assert type(m) is ATTENTION_CLASSES[name] and m.ATTN_TYPE == name
    assert is_attention_module(m)
    assert m(make_input(2, 32, 9, 7)).shape == (2, 32, 9, 7)


def test_create_attn_passes_options_to_the_class():
    assert create_attn("eca", 64, kernel_size=9).kernel_size == 9
    assert create_attn("sk", 64, kernel_sizes=(3, 5, 7), dilated=True).branches[2][0].dilation == (3, 3)


def test_create_attn_sk_is_stride_1_and_channels_to_channels():
    m = create_attn("sk", 48)
    assert all(b[0].stride == (1, 1) and b[0].in_channels == b[0].out_channels == 48 for b in m.branches)


def test_create_attn_sk_refuses_stride_and_out_channels():
    with pytest.raises(InputError, match="SelectiveKernel directly"):
        create_attn("sk", 48, stride=2)


def test_unknown_attention_type_raises_input_error_listing_valid_names():
    with pytest.raises(InputError) as err:
        create_attn("squeeze", 64)
    message = str(err.value)
    assert "'squeeze'" in message and "\n" not in message
    assert all(name in message for name in ATTENTION_TYPES)


def test_unknown_option_raises_input_error_listing_accepted_options():
    with pytest.raises(InputError, match="kernel_size, gamma, beta, gate_layer"):
        create_attn("eca", 64, rd_ratio=0.5)


def test_is_attention_module_is_false_for_other_layers_and_cbam_halves():
    assert not is_attention_module(nn.Conv2d(3, 3, 1))
    assert not is_attention_module(ChannelGate(32))


@pytest.mark.parametrize("name, keys", [
    ("se", ["gate"]), ("cbam", ["channel_gate.gate", "spatial_gate.gate"]), ("bam", ["gate"]),
    ("sk", ["softmax"]), ("simam", ["gate"]), ("eca", ["gate"]),
])
def test_gate_modules_names_each_modules_gates(name, keys):
    m = create_attn(name, 32)
    gates = gate_modules(m)
    assert list(gates) == keys
    assert all(gates[k] is m.get_submodule(k) for k in keys)


def test_gate_modules_refuses_a_module_that_is_not_attention():
    with pytest.raises(InputError, match="gate_modules"):
        gate_modules(nn.Conv2d(3, 3, 1))


def _capture(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    handles = [g.register_forward_hook(lambda _m, _i, out, k=k: seen.__setitem__(k, out))
               for k, g in gate_modules(module).items()]
    module(x)
    for h in handles:
        h.remove()
    return seen


def test_sk_softmax_weights_sum_to_one_across_branches(randomized, make_input):
    m = randomized(SelectiveKernel(32, kernel_sizes=(3, 5, 7)))
    weights = _capture(m, make_input(2, 32, 8, 8))["softmax"]
    assert weights.shape == (2, 3, 32, 1, 1)
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 32, 1, 1))


def test_cbam_hooks_capture_a_channel_and_a_spatial_gate(randomized, make_input):
    seen = _capture(randomized(CBAM(32)), make_input(2, 32, 8, 6))
    assert seen["channel_gate.gate"].shape == (2, 32, 1, 1)
    assert seen["spatial_gate.gate"].shape == (2, 1, 8, 6)
    assert all(((t > 0) & (t < 1)).all() for t in seen.values())


def test_simam_gate_hook_sees_a_full_size_map(make_input):
    assert _capture(SimAM(), make_input(1, 4, 5, 5))["gate"].shape == (1, 4, 5, 5)
