"""Convolutional Block Attention Module.

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018
(arXiv:1807.06521).

Channel gate: ``Mc = gate(MLP(AvgPool(x)) + MLP(MaxPool(x)))`` with ONE shared MLP
``C -> C/r -> C`` (1x1 convs, ReLU, ``r = 16``); ``x' = Mc * x``.
Spatial gate: ``Ms = gate(conv7x7([mean_c(x'); max_c(x')]))``; ``y = Ms * x'``.

Choices: the spatial descriptor is concatenated as (mean, max), the order of the paper's
equation (the authors' code stacks (max, mean), which only permutes the conv's two input
channels). The paper writes no normalisation in the spatial gate; pass
``spatial_norm_layer=nn.BatchNorm2d`` to get the authors' released layout (bias-free conv + BN).
The MLP has biases (the paper's ``W0``/``W1`` are written without, the authors' code has them).
"""

from __future__ import annotations

import torch
from torch import nn

from edge_se.attention._layers import (
    LayerSpec, check_channels, is_odd_int, make_layer, reduced_channels,
)
from edge_se.errors import InputError


class ChannelGate(nn.Module):
    """CBAM channel attention: shared MLP over avg- and max-pooled descriptors, summed, gated.

    Args:
        channels: input (and output) channels ``C``.
        rd_ratio: MLP bottleneck ratio ``1/r``; hidden width ``max(round(C * rd_ratio), 1)``.
        rd_channels: hidden width; overrides ``rd_ratio`` when given.
        act_layer: MLP activation (paper: ReLU).
        gate_layer: gate (paper: sigmoid), kept as ``self.gate``.
    """

    GATE_NAMES = ("gate",)

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        act_layer: LayerSpec = nn.ReLU,
        gate_layer: LayerSpec = nn.Sigmoid,
    ) -> None:
        super().__init__()
        check_channels(channels, "CBAM ChannelGate")
        hidden = reduced_channels(channels, rd_ratio, rd_channels, "CBAM ChannelGate")
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = make_layer(act_layer, "CBAM act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.gate = make_layer(gate_layer, "CBAM gate_layer")

    def mlp(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(s)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        return x * self.gate(logits)


class SpatialGate(nn.Module):
    """CBAM spatial attention: conv over the channel-wise (mean, max) maps, gated.

    Args:
        kernel_size: odd size of the conv (paper: 7).
        gate_layer: gate (paper: sigmoid), kept as ``self.gate``.
        norm_layer: optional norm after the conv (e.g. ``nn.BatchNorm2d``, the authors' code);
            with it the conv has no bias.
    """

    GATE_NAMES = ("gate",)

    def __init__(
        self,
        kernel_size: int = 7,
        gate_layer: LayerSpec = nn.Sigmoid,
        norm_layer: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if not is_odd_int(kernel_size):
            raise InputError(
                f"CBAM SpatialGate: expected an odd positive kernel_size, found {kernel_size!r}"
            )
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=norm_layer is None)
        self.norm = norm_layer(1) if norm_layer is not None else nn.Identity()
        self.gate = make_layer(gate_layer, "CBAM gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * self.gate(self.norm(self.conv(s)))


class CBAM(nn.Module):
    """CBAM block: :class:`ChannelGate` then :class:`SpatialGate`, applied in sequence.

    Args:
        channels: input (and output) channels ``C``.
        rd_ratio: channel MLP ratio ``1/r`` (paper: 1/16).
        rd_channels: channel MLP hidden width; overrides ``rd_ratio`` when given.
        spatial_kernel_size: odd spatial conv size (paper: 7).
        act_layer: channel MLP activation (paper: ReLU).
        gate_layer: gate of both halves (paper: sigmoid).
        spatial_norm_layer: optional norm after the spatial conv (authors' code: BatchNorm2d).
    """

    ATTN_TYPE = "cbam"
    GATE_NAMES = ("channel_gate.gate", "spatial_gate.gate")

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        spatial_kernel_size: int = 7,
        act_layer: LayerSpec = nn.ReLU,
        gate_layer: LayerSpec = nn.Sigmoid,
        spatial_norm_layer: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, rd_ratio, rd_channels, act_layer, gate_layer)
        self.spatial_gate = SpatialGate(spatial_kernel_size, gate_layer, spatial_norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x))
