"""Every accepted argument has an effect, and bad values raise InputError."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edge_se.attention import BAM, CBAM, ECA, SEModule, SelectiveKernel, SimAM, create_attn, eca_kernel_size
from edge_se.errors import InputError


@pytest.mark.parametrize("channels, k", [
    (4, 1), (16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7),
])
def test_eca_kernel_size_follows_the_adaptive_odd_rule(channels, k):
    assert eca_kernel_size(channels) == k
    assert ECA(channels).conv.weight.shape[-1] == k


def test_eca_gamma_and_beta_change_the_kernel_size():
    assert ECA(512, gamma=1.0).kernel_size == 11  # log2(512) + 1 = 10 -> 11
    assert ECA(512, beta=3.0).kernel_size == 7  # (9 + 3) / 2 = 6 -> 7


def test_eca_kernel_size_override_is_used(randomized, make_input):
    x = make_input(1, 64, 8, 8)
    default, wide = randomized(ECA(64)), randomized(ECA(64, kernel_size=7))
    assert wide.conv.weight.shape[-1] == 7
    assert not torch.allclose(default(x), wide(x))


@pytest.mark.parametrize("bad", [0, 4, -3, 2.0])
def test_eca_refuses_a_kernel_size_that_is_not_a_positive_odd_int(bad):
    with pytest.raises(InputError, match="kernel_size"):
        ECA(64, kernel_size=bad)


@pytest.mark.parametrize("cls", [SEModule, CBAM, BAM])
def test_rd_ratio_and_rd_channels_set_the_hidden_width(cls):
    def hidden(m: nn.Module) -> int:
        return next(c for c in m.modules() if isinstance(c, nn.Conv2d) and c.in_channels == 64).out_channels

    assert hidden(cls(64)) == 4
    assert hidden(cls(64, rd_ratio=1 / 4)) == 16
    assert hidden(cls(64, rd_channels=10)) == 10


def test_sk_hidden_width_is_max_of_c_over_r_and_min_channels():
    assert SelectiveKernel(64).fuse[0].out_channels == 32  # max(64/16, 32)
    assert SelectiveKernel(64, min_channels=8).fuse[0].out_channels == 8
    assert SelectiveKernel(64, min_channels=1, rd_ratio=1 / 4).fuse[0].out_channels == 16
    assert SelectiveKernel(64, rd_channels=12).fuse[0].out_channels == 12
    assert SelectiveKernel(1024).fuse[0].out_channels == 64


GATE_SWAPS = [
    (SEModule, dict(channels=32)),
    (CBAM, dict(channels=32)),
    (BAM, dict(channels=32)),
    (ECA, dict(channels=32)),
    (SimAM, dict()),
]


@pytest.mark.parametrize("cls, args", GATE_SWAPS, ids=lambda v: getattr(v, "__name__", ""))
def test_gate_layer_swap_changes_the_output(cls, args, randomized, make_input):
    x = make_input(2, 32, 8, 8)
    sig = randomized(cls(**args))
    hard = randomized(cls(**args, gate_layer="hard_sigmoid"))
    assert isinstance(hard.get_submodule("gate" if cls is not CBAM else "channel_gate.gate"), nn.Hardsigmoid)
    assert not torch.allclose(sig(x), hard(x))


@pytest.mark.parametrize("cls", [SEModule, CBAM, BAM, SelectiveKernel])
def test_act_layer_swap_changes_the_output(cls, randomized, make_input):
    x = make_input(2, 32, 8, 8)
    assert not torch.allclose(randomized(cls(32))(x), randomized(cls(32, act_layer=nn.Tanh))(x))


def test_an_unknown_layer_name_raises_input_error_listing_names():
    with pytest.raises(InputError, match="hard_sigmoid"):
        SEModule(32, gate_layer="sigmoidd")


def test_se_bias_false_drops_the_fc_biases():
    m = SEModule(32, bias=False)
    assert m.fc1.bias is None and m.fc2.bias is None


def test_cbam_spatial_kernel_size_and_norm_layer_are_used(randomized, make_input):
    x = make_input(1, 32, 8, 8)
    base = randomized(CBAM(32))
    k3 = randomized(CBAM(32, spatial_kernel_size=3))
    bn = randomized(CBAM(32, spatial_norm_layer=nn.BatchNorm2d))
    assert k3.spatial_gate.conv.kernel_size == (3, 3)
    assert isinstance(bn.spatial_gate.norm, nn.BatchNorm2d) and bn.spatial_gate.conv.bias is None
    assert not torch.allclose(base(x), k3(x))
    assert not torch.allclose(base(x), bn(x))


def test_bam_dilation_sets_the_spatial_convs(randomized, make_input):
    m = BAM(32, dilation=2)
    dilated = [c for c in m.spatial_att if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
    assert [c.dilation for c in dilated] == [(2, 2)] * 2
    x = make_input(1, 32, 12, 12)
    d4, d2 = randomized(BAM(32, rd_ratio=1 / 4)), randomized(BAM(32, rd_ratio=1 / 4, dilation=2))
    assert not torch.allclose(d4(x), d2(x))


def test_bam_refuses_an_unknown_combine_mode():
    with pytest.raises(InputError, match="sum, product"):
        BAM(32, combine="mul")


def test_sk_options_shape_the_branches(make_input):
    m = SelectiveKernel(32, out_channels=64, stride=2, kernel_sizes=(3, 5, 7), groups=8)
    convs = [b[0] for b in m.branches]
    assert [c.kernel_size[0] for c in convs] == [3, 5, 7]
    assert all(c.groups == 8 and c.stride == (2, 2) and c.out_channels == 64 for c in convs)
    assert len(m.select) == 3
    assert m.eval()(make_input(2, 32, 16, 12)).shape == (2, 64, 8, 6)


def test_sk_dilated_turns_large_kernels_into_dilated_3x3():
    m = SelectiveKernel(32, kernel_sizes=(3, 5, 7), dilated=True)
    assert [(b[0].kernel_size, b[0].dilation) for b in m.branches] == [
        ((3, 3), (1, 1)), ((3, 3), (2, 2)), ((3, 3), (3, 3))]


@pytest.mark.parametrize("kwargs", [dict(kernel_sizes=(3,)), dict(kernel_sizes=(3, 4)), dict(groups=3),
                                    dict(kernel_sizes=(1, 3), dilated=True), dict(stride=0)])
def test_sk_refuses_invalid_options(kwargs):
    with pytest.raises(InputError):
        SelectiveKernel(40, **kwargs)


def test_simam_e_lambda_changes_the_output(make_input):
    x = make_input(1, 8, 6, 6)
    assert not torch.allclose(SimAM()(x), SimAM(e_lambda=1.0)(x))


@pytest.mark.parametrize("bad", [0, -1e-4])
def test_simam_refuses_a_non_positive_lambda(bad):
    with pytest.raises(InputError, match="e_lambda"):
        SimAM(e_lambda=bad)


@pytest.mark.parametrize("channels", [0, -8, 3.5])
def test_channels_must_be_a_positive_int(channels):
    with pytest.raises(InputError, match="channels"):
        create_attn("se", channels)
