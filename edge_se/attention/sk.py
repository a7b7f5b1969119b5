"""Selective Kernel convolution.

Paper: Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019 (arXiv:1903.06586).

Split: M branches, branch m a ``k_m x k_m`` conv (``kernel_sizes``, default 3 and 5) with
``groups``, then BN + ReLU. Fuse: ``U = sum_m U_m``, ``s = GAP(U)``, ``z = ReLU(BN(fc(s)))`` with
``d = max(C / r, L)`` (``r = 16``, ``L = 32``). Select: one FC per branch, ``a = softmax`` across
branches (``self.softmax``), ``V = sum_m a_m * U_m``. All FCs are bias-free 1x1 convs.

``dilated=True`` replaces a ``k x k`` kernel by a 3x3 kernel with dilation ``(k - 1) / 2``, as
the paper suggests for efficiency (5x5 -> 3x3, dilation 2). Deviation: ``C / r`` is rounded,
``max(round(C_out * rd_ratio), min_channels)``. Unlike timm, the input is not split across
branches: every branch sees all input channels, as in the paper. In training mode the fuse BN
needs a batch of more than one sample.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edge_se.attention._layers import (
    LayerSpec, check_channels, is_odd_int, make_layer, reduced_channels,
)
from edge_se.errors import InputError


class SelectiveKernel(nn.Module):
    """SK convolution: multi-kernel branches fused by a softmax attention across branches.

    Args:
        channels: input channels.
        out_channels: output channels ``C`` (default: ``channels``).
        stride: stride of every branch conv.
        kernel_sizes: one odd kernel size per branch (at least two branches).
        dilated: use 3x3 kernels with dilation ``(k - 1) / 2`` instead of ``k x k`` kernels.
        rd_ratio: fuse reduction ``1/r``; ``d = max(round(C * rd_ratio), min_channels)``.
        rd_channels: ``d`` itself; overrides ``rd_ratio`` and ``min_channels`` when given.
        min_channels: the paper's ``L``, the least ``d`` (paper: 32).
        groups: groups of every branch conv (paper's SKNet-50: 32); must divide both widths.
        act_layer: activation of the branches and of the fuse layer (paper: ReLU).
    """

    ATTN_TYPE = "sk"
    GATE_NAMES = ("softmax",)

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        stride: int = 1,
        kernel_sizes: Sequence[int] = (3, 5),
        dilated: bool = False,
        rd_ratio: float = 1.0 / 16,
        rd_channels: int | None = None,
        min_channels: int = 32,
        groups: int = 1,
        act_layer: LayerSpec = nn.ReLU,
    ) -> None:
        super().__init__()
        check_channels(channels, "SelectiveKernel")
        if out_channels is None:
            out_channels = channels
        check_channels(out_channels, "SelectiveKernel", "out_channels")
        check_channels(stride, "SelectiveKernel", "stride")
        check_channels(groups, "SelectiveKernel", "groups")
        check_channels(min_channels, "SelectiveKernel", "min_channels")
        kernel_sizes = tuple(kernel_sizes)
        smallest = 3 if dilated else 1
        if len(kernel_sizes) < 2 or not all(is_odd_int(k, smallest) for k in kernel_sizes):
            raise InputError(
                f"SelectiveKernel: expected at least two odd kernel sizes >= {smallest}, found {kernel_sizes!r}"
            )
        if channels % groups or out_channels % groups:
            raise InputError(
                f"SelectiveKernel: groups={groups} must divide channels={channels} and "
                f"out_channels={out_channels}; pick a common divisor"
            )
        self.kernel_sizes = kernel_sizes
        self.dilated = bool(dilated)
        hidden = reduced_channels(
            out_channels, rd_ratio, rd_channels, "SelectiveKernel", minimum=min_channels
        )

        def act() -> nn.Module:
            return make_layer(act_layer, "SelectiveKernel act_layer")

        branches = []
        for k in kernel_sizes:
            size, dilation = (3, (k - 1) // 2) if dilated else (k, 1)
            pad = dilation * (size - 1) // 2
            branches.append(nn.Sequential(
                nn.Conv2d(channels, out_channels, size, stride=stride, padding=pad,
                          dilation=dilation, groups=groups, bias=False),
                nn.BatchNorm2d(out_channels), act(),
            ))
        self.branches = nn.ModuleList(branches)
        self.fuse = nn.Sequential(
            nn.Conv2d(out_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()
        )
        self.select = nn.ModuleList(
            nn.Conv2d(hidden, out_channels, 1, bias=False) for _ in kernel_sizes
        )
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, M, C, H, W)
        z = self.fuse(feats.sum(1).mean((2, 3), keepdim=True))  # (B, d, 1, 1)
        logits = torch.stack([fc(z) for fc in self.select], dim=1)  # (B, M, C, 1, 1)
        weights = self.softmax(logits)
        return (feats * weights).sum(1)

    def extra_repr(self) -> str:
        return f"kernel_sizes={self.kernel_sizes}, dilated={self.dilated}"
