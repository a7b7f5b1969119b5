"""Efficient Channel Attention.

Paper: Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020 (arXiv:1910.03151).

``y = x * gate(conv1d_k(GAP(x)))``: a bias-free 1-D convolution across the channel axis with
zero padding. The kernel size follows the paper's adaptive rule
``k = |log2(C) / gamma + b / gamma|_odd`` (truncate, then the next odd number), ``gamma = 2``,
``b = 1``: C=64 -> 3, C=256 -> 5, C=512 -> 5. No deviation: unlike timm, ``k`` is not clamped to
at least 3 (C < 8 gives k = 1, as the formula does).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edge_se.attention._layers import LayerSpec, check_channels, is_odd_int, make_layer
from edge_se.errors import InputError


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """The paper's adaptive kernel size: ``t = int(|(log2(C) + beta) / gamma|)``, made odd."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """ECA block: global average pool, 1-D conv across channels, gate, channel-wise scale.

    Args:
        channels: input (and output) channels ``C``; sets the adaptive kernel size.
        kernel_size: odd kernel size of the channel conv; overrides the ``gamma``/``beta`` rule.
        gamma: ``gamma`` of the adaptive rule (paper: 2).
        beta: ``b`` of the adaptive rule (paper: 1).
        gate_layer: gate on the channel weights (paper: sigmoid), kept as ``self.gate``.
    """

    ATTN_TYPE = "eca"
    GATE_NAMES = ("gate",)

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2.0,
        beta: float = 1.0,
        gate_layer: LayerSpec = nn.Sigmoid,
    ) -> None:
        super().__init__()
        check_channels(channels, "ECA")
        if kernel_size is None:
            if gamma <= 0:
                raise InputError(f"ECA: expected gamma > 0, found {gamma!r}")
            kernel_size = eca_kernel_size(channels, gamma, beta)
        elif not is_odd_int(kernel_size):
            raise InputError(
                f"ECA: expected kernel_size to be a positive odd int, found {kernel_size!r}; "
                f"odd sizes keep the channel count with 'same' padding"
            )
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = make_layer(gate_layer, "ECA gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
        w = self.conv(s).squeeze(1).unsqueeze(-1).unsqueeze(-1)  # (B, C, 1, 1)
        return x * self.gate(w)
