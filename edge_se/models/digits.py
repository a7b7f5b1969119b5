"""Small attention CNNs for 1x1x32x32 digit images (scikit-learn's 8x8 digits, resized), 10 classes.

They train in well under two minutes on a laptop CPU, so the quantization and fidelity checks can
run on models whose attention gates actually learned something.

- ``se_digits``: MBConv-style (Tan & Le, EfficientNet): 1x1 expand, depthwise 3x3, SE on the
  expanded width (hidden = input width / 4, SiLU), 1x1 project, residual when shapes allow. The
  depthwise + SE + SiLU pattern is the one INT8 finds hardest.
- ``{cbam,bam,simam,eca}_digits``: three conv-BN-ReLU stages (32, 64, 128 channels), the
  attention module after each stage, 2x2 max-pool between stages.
- ``sk_digits``: the same stages with the 3x3 conv of stages 2 and 3 replaced by a SelectiveKernel
  conv (3x3 and dilated 3x3 branches, the paper's cheap 5x5), as in SKNet; stage 1 sees a single
  gray channel, where selecting kernels has nothing to choose from, so it stays a plain conv.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from edge_se.attention import SelectiveKernel, create_attn
from edge_se.errors import InputError
from edge_se.models._init import kaiming_init_
from edge_se.models.registry import register_model

DIGITS_SHAPE = (1, 1, 32, 32)
CONV_DIGITS_ATTN = ("cbam", "bam", "sk", "simam", "eca")


def _conv_bn_act(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: type = nn.SiLU) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(inplace=True),
    )


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise 3x3, SE, project 1x1 (+ identity shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 4, se_ratio: float = 0.25) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn_act(cin, mid, 1)
        self.dw = _conv_bn_act(mid, mid, 3, stride=stride, groups=mid)
        self.attn = create_attn("se", mid, rd_channels=max(1, int(cin * se_ratio)), act_layer=nn.SiLU)
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.attn(self.dw(self.expand(x))))
        return out + x if self.residual else out


class MBConvDigitsNet(nn.Module):
    """Stem conv, five MBConv blocks (32 -> 4 pixels), 1x1 head, global mean, linear classifier."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.attn_type = "se"
        self.stem = _conv_bn_act(in_chans, 16, 3)
        self.blocks = nn.Sequential(
            MBConv(16, 24, stride=2), MBConv(24, 24),
            MBConv(24, 40, stride=2), MBConv(40, 40),
            MBConv(40, 64, stride=2),
        )
        self.head = _conv_bn_act(64, 128, 1)
        self.fc = nn.Linear(128, num_classes)
        kaiming_init_(self, mode="fan_in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.blocks(self.stem(x))).mean((2, 3)))


class ConvDigitsNet(nn.Module):
    """Conv-BN-ReLU stages, each followed by its attention module, max-pool between stages.

    Args:
        attn_type: one of ``cbam, bam, sk, simam, eca`` (``sk`` replaces the conv of stages 2+).
        num_classes, in_chans: classifier outputs and input channels.
        widths: channels of the stages.
        attn_kwargs: keyword arguments of the attention module.
    """

    def __init__(
        self,
        attn_type: str,
        num_classes: int = 10,
        in_chans: int = 1,
        widths: Sequence[int] = (32, 64, 128),
        attn_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if attn_type not in CONV_DIGITS_ATTN:
            raise InputError(f"ConvDigitsNet: expected attn_type in {', '.join(CONV_DIGITS_ATTN)}, found {attn_type!r}")
        self.attn_type = attn_type
        kw = attn_kwargs or {}
        stages, cin = [], in_chans
        for i, w in enumerate(widths):
            if attn_type != "sk":
                stage = nn.Sequential(*_conv_bn_act(cin, w, 3, act=nn.ReLU), create_attn(attn_type, w, **kw))
            elif i == 0:
                stage = _conv_bn_act(cin, w, 3, act=nn.ReLU)
            else:
                stage = SelectiveKernel(cin, w, dilated=True, **kw)
            stages.append(stage)
            cin = w
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(cin, num_classes)
        kaiming_init_(self, mode="fan_in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.pool(stage(x))
        return self.fc(x.mean((2, 3)))


_ZOO = dict(input_shape=DIGITS_SHAPE, num_classes=10)
# Entry points: keyword options num_classes, in_chans (and attn_kwargs for the conv nets).


@register_model(family="digits-mbconv", attention="se", **_ZOO)
def se_digits(num_classes: int = 10, in_chans: int = 1) -> MBConvDigitsNet:
    """MBConv digits net: depthwise conv + SE + SiLU blocks (the INT8-hard pattern), ~70k params."""
    return MBConvDigitsNet(num_classes=num_classes, in_chans=in_chans)


@register_model(family="digits-cnn", attention="cbam", **_ZOO)
def cbam_digits(num_classes: int = 10, in_chans: int = 1, attn_kwargs: dict | None = None) -> ConvDigitsNet:
    """Three conv-BN-ReLU stages for digits, CBAM after each stage."""
    return ConvDigitsNet("cbam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="digits-cnn", attention="bam", **_ZOO)
def bam_digits(num_classes: int = 10, in_chans: int = 1, attn_kwargs: dict | None = None) -> ConvDigitsNet:
    """Three conv-BN-ReLU stages for digits, BAM at each stage boundary."""
    return ConvDigitsNet("bam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="digits-cnn", attention="sk", **_ZOO)
def sk_digits(num_classes: int = 10, in_chans: int = 1, attn_kwargs: dict | None = None) -> ConvDigitsNet:
    """Three stages for digits, the 3x3 conv of stages 2 and 3 a SelectiveKernel conv."""
    return ConvDigitsNet("sk", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="digits-cnn", attention="simam", **_ZOO)
def simam_digits(num_classes: int = 10, in_chans: int = 1, attn_kwargs: dict | None = None) -> ConvDigitsNet:
    """Three conv-BN-ReLU stages for digits, parameter-free SimAM after each stage."""
    return ConvDigitsNet("simam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="digits-cnn", attention="eca", **_ZOO)
def eca_digits(num_classes: int = 10, in_chans: int = 1, attn_kwargs: dict | None = None) -> ConvDigitsNet:
    """Three conv-BN-ReLU stages for digits, ECA after each stage."""
    return ConvDigitsNet("eca", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)
