"""Squeeze-and-Excitation channel attention.

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507).

``y = x * gate(fc2(act(fc1(GAP(x)))))`` with the FC layers as 1x1 convolutions (with bias),
``C -> C/r -> C`` and ``r = 16``. Deviation: the hidden width is ``max(round(C / r), 1)``
(the paper uses ``C / r`` on channel counts divisible by ``r``); ``rd_channels`` sets it directly.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_se.attention._layers import LayerSpec, check_channels, make_layer, reduced_channels


class SEModule(nn.Module):
    """SE block: global average pool, bottleneck MLP, gate, channel-wise scale.

    Args:
        channels: input (and output) channels ``C``.
        rd_ratio: bottleneck ratio ``1/r``; hidden width ``max(round(C * rd_ratio), 1)``.
        rd_channels: hidden width; overrides ``rd_ratio`` when given.
        act_layer: activation between the FCs (paper: ReLU).
        gate_layer: gate on the channel weights (paper: sigmoid), kept as ``self.gate``.
        bias: whether the FC layers carry a bias (paper: yes).
    """

    ATTN_TYPE = "se"
    GATE_NAMES = ("gate",)

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        act_layer: LayerSpec = nn.ReLU,
        gate_layer: LayerSpec = nn.Sigmoid,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_channels(channels, "SEModule")
        hidden = reduced_channels(channels, rd_ratio, rd_channels, "SEModule")
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=bias)
        self.act = make_layer(act_layer, "SEModule act_layer")
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)
        self.gate = make_layer(gate_layer, "SEModule gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
