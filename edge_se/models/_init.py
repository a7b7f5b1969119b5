"""Weight initialisation shared by the zoo backbones."""

from __future__ import annotations

from torch import nn


def kaiming_init_(model: nn.Module, mode: str = "fan_out") -> None:
    """He-normal convolutions (ReLU gain, zero bias), BN weight 1 / bias 0; in place.

    ``fan_in`` suits depthwise convolutions (torch's ``fan_out`` counts all output channels of a
    depthwise kernel, which makes its weights ~sqrt(channels) times too small).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
