"""Bottleneck Attention Module.

Paper: Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018 (arXiv:1807.06514).

Channel branch ``Mc(x)``: GAP, then an MLP ``C -> C/r -> C`` (1x1 convs) with BN + ReLU on the
hidden layer; shape (B, C, 1, 1).
Spatial branch ``Ms(x)``: 1x1 conv ``C -> C/r``, two 3x3 convs with dilation ``d = 4``, each
followed by BN + ReLU (the 1x1 reduction too), then a 1x1 conv to one map; shape (B, 1, H, W).
Attention ``M = 1 + gate(Mc + Ms)`` (broadcast), output ``y = M * x``; ``r = 16``, ``d = 4``.

Choices: the branches are combined by element-wise SUM, as the paper's equation states (the
issue text said a product, and the authors' released code multiplies them:
``combine="product"`` gives that variant). Normalisation follows the authors' released layout
(BN + ReLU after every hidden layer, none on a branch's last layer); the paper writes a single BN
around each branch's output. Hidden convs followed by BN are bias-free. In training mode the
channel branch's BN needs a batch of more than one sample (it normalises 1x1 maps).
"""

from __future__ import annotations

import torch
from torch import nn

from edge_se.attention._layers import LayerSpec, check_channels, make_layer, reduced_channels
from edge_se.errors import InputError

COMBINE_MODES = ("sum", "product")


class BAM(nn.Module):
    """BAM block: ``y = (1 + gate(Mc(x) + Ms(x))) * x``.

    Args:
        channels: input (and output) channels ``C``.
        rd_ratio: reduction ``1/r`` of both branches; hidden width ``max(round(C * rd_ratio), 1)``.
        rd_channels: hidden width of both branches; overrides ``rd_ratio`` when given.
        dilation: dilation of the two 3x3 spatial convs (paper: 4).
        act_layer: hidden activation (paper: ReLU).
        gate_layer: gate on the combined branches (paper: sigmoid), kept as ``self.gate``.
        combine: ``"sum"`` (paper) or ``"product"`` (authors' released code) of the two branches.
    """

    ATTN_TYPE = "bam"
    GATE_NAMES = ("gate",)

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        dilation: int = 4,
        act_layer: LayerSpec = nn.ReLU,
        gate_layer: LayerSpec = nn.Sigmoid,
        combine: str = "sum",
    ) -> None:
        super().__init__()
        check_channels(channels, "BAM")
        check_channels(dilation, "BAM", "dilation")
        if combine not in COMBINE_MODES:
            raise InputError(
                f"BAM: expected combine to be one of {', '.join(COMBINE_MODES)}, found {combine!r}"
            )
        self.combine = combine
        hidden = reduced_channels(channels, rd_ratio, rd_channels, "BAM")

        def act() -> nn.Module:
            return make_layer(act_layer, "BAM act_layer")

        self.channel_att = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, channels, 1),
        )
        self.spatial_att = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, 1, 1),
        )
        self.gate = make_layer(gate_layer, "BAM gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.channel_att(x.mean((2, 3), keepdim=True))
        ms = self.spatial_att(x)
        logits = mc + ms if self.combine == "sum" else mc * ms
        return (1 + self.gate(logits)) * x

    def extra_repr(self) -> str:
        return f"combine={self.combine!r}"
