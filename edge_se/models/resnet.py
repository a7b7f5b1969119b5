"""One generic ResNet / ResNeXt with an attention hook, and the zoo's attention-ResNets.

Papers: He et al., "Deep Residual Learning", CVPR 2016; Xie et al., "Aggregated Residual
Transformations" (ResNeXt), CVPR 2017. Attention placement follows each attention paper:

- ``se``, ``cbam``: on the residual branch after the last BN, before the add (Hu et al. 2018,
  Woo et al. 2018); ``eca``, ``simam`` at the same place (ECA-Net, SimAM).
- ``bam``: one BAM at each bottleneck between stages, after stages 1-3 (Park et al. 2018).
- ``sk``: the block's 3x3 convolution (+BN+ReLU) is replaced by a SelectiveKernel conv
  (Li et al., SKNet, 2019); in BasicBlock the first (strided) 3x3, as timm's skresnet18. The zoo
  entry points use SKNet's branches (3x3 and 3x3 with dilation 2) but groups=1: they are
  SK-ResNets, not the paper's SKNet-50 (a 32-group ResNeXt); pass ``attn_kwargs`` to change it.

The stem is the torchvision/He et al. stem; global pooling is ``x.mean((2, 3))`` so any input
size works. Init: Kaiming-normal (fan_out) convolutions, BN weight 1 / bias 0, except the last BN
of each residual branch, whose weight is ``1/sqrt(number of blocks)`` (as SkipInit/Fixup scale
residual branches). Reason: edge-se exports random-init models for testing, and with weight 1 a
random-init SE-ResNet-152 in eval mode reaches activations of ~5e3 and is numerically chaotic
(float32 vs float64 logits differ by 12% at 64x64), so no export check could pass; with the
scaling the same comparison differs by 5e-7. Trained checkpoints overwrite it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from edge_se.attention import SelectiveKernel, create_attn
from edge_se.errors import InputError
from edge_se.models._init import kaiming_init_
from edge_se.models.registry import register_model

BLOCK_ATTN = ("se", "cbam", "eca", "simam")  # applied before the residual add
STAGE_ATTN = ("bam",)  # applied between stages
CONV_ATTN = ("sk",)  # replaces the block's 3x3 convolution
RESNET_ATTN = BLOCK_ATTN + STAGE_ATTN + CONV_ATTN
IMAGENET_SHAPE = (1, 3, 224, 224)


def _conv3x3_or_sk(
    cin: int, cout: int, stride: int, groups: int, attn_type: str | None, attn_kwargs: dict
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(conv, norm, act) for a block's 3x3 position; SK brings its own norm and activation."""
    if attn_type == "sk":
        sk = SelectiveKernel(cin, cout, stride=stride, groups=groups, **attn_kwargs)
        return sk, nn.Identity(), nn.Identity()
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)


def _attn_at(attn_type: str | None, here: bool, channels: int, attn_kwargs: dict) -> nn.Module:
    """The attention module if this is its place, else Identity."""
    return create_attn(attn_type, channels, **attn_kwargs) if here else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_type: str | None = None,
        attn_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise InputError(
                f"BasicBlock supports groups=1, base_width=64 only, found groups={groups}, "
                f"base_width={base_width}; use Bottleneck for ResNeXt widths"
            )
        kw = attn_kwargs or {}
        self.conv1, self.bn1, self.act1 = _conv3x3_or_sk(inplanes, planes, stride, 1, attn_type, kw)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = _attn_at(attn_type, attn_type in BLOCK_ATTN, planes, kw)
        self.downsample = downsample
        self.act2 = nn.ReLU(inplace=True)

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.act2(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (x4), with a shortcut."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_type: str | None = None,
        attn_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        kw = attn_kwargs or {}
        width = int(planes * base_width / 64) * groups
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2, self.bn2, self.act2 = _conv3x3_or_sk(width, width, stride, groups, attn_type, kw)
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.attn = _attn_at(attn_type, attn_type in BLOCK_ATTN, outplanes, kw)
        self.downsample = downsample
        self.act3 = nn.ReLU(inplace=True)

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        return self.act3(out + shortcut)


class ResNet(nn.Module):
    """ResNet/ResNeXt backbone + classifier with one attention type placed per its paper.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage (four stages).
        num_classes: classifier outputs.
        in_chans: input channels.
        groups, base_width: ResNeXt cardinality and width per group (``32, 4`` for 32x4d).
        attn_type: one of ``se, cbam, eca, simam, bam, sk`` or None (plain ResNet).
        attn_kwargs: keyword arguments of the attention module (e.g. ``{"rd_ratio": 1/8}``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        base_width: int = 64,
        attn_type: str | None = None,
        attn_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if attn_type is not None and attn_type not in RESNET_ATTN:
            raise InputError(
                f"ResNet: expected attn_type in {', '.join(RESNET_ATTN)} or None, found {attn_type!r}"
            )
        if len(layers) != 4:
            raise InputError(f"ResNet: expected 4 stage depths, found {list(layers)}")
        self.attn_type = attn_type
        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        stages, stage_attn = [], []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            blocks, inplanes = self._make_stage(
                block, inplanes, planes, depth, stride, groups, base_width, attn_type, attn_kwargs or {}
            )
            stages.append(blocks)
            is_bam_point = attn_type in STAGE_ATTN and i < 3
            stage_attn.append(_attn_at(attn_type, is_bam_point, inplanes, attn_kwargs or {}))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.stage_attn = nn.ModuleList(stage_attn)
        self.num_features = inplanes
        self.fc = nn.Linear(inplanes, num_classes)
        self._init_weights()

    @staticmethod
    def _make_stage(block, inplanes, planes, depth, stride, groups, base_width, attn_type, attn_kwargs):
        outplanes = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != outplanes:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
            )
        common = dict(groups=groups, base_width=base_width, attn_type=attn_type, attn_kwargs=attn_kwargs)
        blocks = [block(inplanes, planes, stride, downsample, **common)]
        blocks += [block(outplanes, planes, **common) for _ in range(depth - 1)]
        return nn.Sequential(*blocks), outplanes

    def _init_weights(self) -> None:
        kaiming_init_(self, mode="fan_out")
        blocks = [m for m in self.modules() if isinstance(m, (BasicBlock, Bottleneck))]
        for block in blocks:  # depth-scaled residual branches (see the module docstring)
            nn.init.constant_(block.last_norm.weight, len(blocks) ** -0.5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for stage, attn in zip((self.layer1, self.layer2, self.layer3, self.layer4), self.stage_attn):
            x = attn(stage(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean((2, 3)))


def _resnet(block: Any, layers: Sequence[int], attn: str, attn_kwargs: dict | None = None, **kwargs: Any) -> ResNet:
    if attn == "sk":  # SKNet's configuration: the 5x5 branch as a 3x3 with dilation 2
        attn_kwargs = {"dilated": True, **(attn_kwargs or {})}
    return ResNet(block, layers, attn_type=attn, attn_kwargs=attn_kwargs, **kwargs)


_B, _BN = BasicBlock, Bottleneck
_ZOO = dict(input_shape=IMAGENET_SHAPE, num_classes=1000)
# Entry points: keyword options num_classes, in_chans, attn_kwargs (forwarded to ResNet).


@register_model(family="se-resnet", attention="se", **_ZOO)
def se_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNet-18: SE (r=16) before the residual add of every BasicBlock (Hu et al. 2018)."""
    return _resnet(_B, (2, 2, 2, 2), "se", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="se-resnet", attention="se", **_ZOO)
def se_resnet34(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNet-34: SE (r=16) before the residual add of every BasicBlock (Hu et al. 2018)."""
    return _resnet(_B, (3, 4, 6, 3), "se", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="se-resnet", attention="se", **_ZOO)
def se_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNet-50: SE (r=16) before the residual add of every Bottleneck (Hu et al. 2018)."""
    return _resnet(_BN, (3, 4, 6, 3), "se", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="se-resnet", attention="se", **_ZOO)
def se_resnet101(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNet-101: SE (r=16) before the residual add of every Bottleneck (Hu et al. 2018)."""
    return _resnet(_BN, (3, 4, 23, 3), "se", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="se-resnet", attention="se", **_ZOO)
def se_resnet152(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNet-152: SE (r=16) before the residual add of every Bottleneck (Hu et al. 2018)."""
    return _resnet(_BN, (3, 8, 36, 3), "se", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="se-resnext", attention="se", **_ZOO)
def se_resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SE-ResNeXt-50 (32x4d): grouped 3x3 bottlenecks with SE before the residual add."""
    return _resnet(
        _BN, (3, 4, 6, 3), "se", groups=32, base_width=4,
        num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs,
    )


@register_model(family="cbam-resnet", attention="cbam", **_ZOO)
def cbam_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """CBAM-ResNet-18: CBAM before the residual add of every BasicBlock (Woo et al. 2018)."""
    return _resnet(_B, (2, 2, 2, 2), "cbam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="cbam-resnet", attention="cbam", **_ZOO)
def cbam_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """CBAM-ResNet-50: CBAM before the residual add of every Bottleneck (Woo et al. 2018)."""
    return _resnet(_BN, (3, 4, 6, 3), "cbam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="bam-resnet", attention="bam", **_ZOO)
def bam_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """BAM-ResNet-18: BAM at the three bottlenecks between stages (Park et al. 2018)."""
    return _resnet(_B, (2, 2, 2, 2), "bam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="bam-resnet", attention="bam", **_ZOO)
def bam_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """BAM-ResNet-50: BAM at the three bottlenecks between stages (Park et al. 2018)."""
    return _resnet(_BN, (3, 4, 6, 3), "bam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="sk-resnet", attention="sk", **_ZOO)
def sk_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SK-ResNet-18: the first 3x3 conv of every BasicBlock is a SelectiveKernel conv (SKNet)."""
    return _resnet(_B, (2, 2, 2, 2), "sk", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="sk-resnet", attention="sk", **_ZOO)
def sk_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SK-ResNet-50: the 3x3 conv of every Bottleneck is a SelectiveKernel conv (SKNet)."""
    return _resnet(_BN, (3, 4, 6, 3), "sk", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="simam-resnet", attention="simam", **_ZOO)
def simam_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SimAM-ResNet-18: parameter-free SimAM before the residual add of every BasicBlock."""
    return _resnet(_B, (2, 2, 2, 2), "simam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="simam-resnet", attention="simam", **_ZOO)
def simam_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """SimAM-ResNet-50: parameter-free SimAM before the residual add of every Bottleneck."""
    return _resnet(_BN, (3, 4, 6, 3), "simam", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="eca-resnet", attention="eca", **_ZOO)
def eca_resnet18(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """ECA-ResNet-18: ECA (adaptive k) before the residual add of every BasicBlock (Wang et al. 2020)."""
    return _resnet(_B, (2, 2, 2, 2), "eca", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)


@register_model(family="eca-resnet", attention="eca", **_ZOO)
def eca_resnet50(num_classes: int = 1000, in_chans: int = 3, attn_kwargs: dict | None = None) -> ResNet:
    """ECA-ResNet-50: ECA (adaptive k) before the residual add of every Bottleneck (Wang et al. 2020)."""
    return _resnet(_BN, (3, 4, 6, 3), "eca", num_classes=num_classes, in_chans=in_chans, attn_kwargs=attn_kwargs)
