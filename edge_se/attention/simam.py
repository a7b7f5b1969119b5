"""SimAM: a simple, parameter-free attention module.

Paper: Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for
Convolutional Neural Networks", ICML 2021.

Per channel, with ``n = H * W - 1``, ``mu`` the spatial mean, ``d = (x - mu)^2``,
``v = sum(d) / n``: ``e_inv = d / (4 * (v + lambda)) + 1/2`` and ``y = x * sigmoid(e_inv)``,
``lambda = 1e-4``.

Deviations: SimAM has no ``channels`` argument (it has no weights; ``create_attn`` drops it).
On a 1x1 map, where the paper's ``n = 0`` makes ``v = 0/0``, ``n`` is clamped to 1 so ``v = 0``
and the gate is ``sigmoid(1/2)`` instead of NaN. ``n`` is read from the input's shape at run
time (in ONNX: Shape, Gather, Mul, Sub, Clip), so the module stays resolution-agnostic.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_se.attention._layers import LayerSpec, make_layer
from edge_se.errors import InputError


class SimAM(nn.Module):
    """SimAM block: energy-based, parameter-free 3-D attention.

    Args:
        e_lambda: the regulariser ``lambda`` of the energy function (paper: 1e-4).
        gate_layer: gate on the inverse energy (paper: sigmoid), kept as ``self.gate``.
    """

    ATTN_TYPE = "simam"
    GATE_NAMES = ("gate",)

    def __init__(self, e_lambda: float = 1e-4, gate_layer: LayerSpec = nn.Sigmoid) -> None:
        super().__init__()
        if isinstance(e_lambda, bool) or not isinstance(e_lambda, (int, float)) or e_lambda <= 0:
            raise InputError(f"SimAM: expected e_lambda to be a positive number, found {e_lambda!r}")
        self.e_lambda = float(e_lambda)
        self.gate = make_layer(gate_layer, "SimAM gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        # under torch.jit.trace the size is a traced tensor: clamp it as a tensor to stay dynamic
        n = n.clamp(min=1) if isinstance(n, torch.Tensor) else max(n, 1)
        d = (x - x.mean((2, 3), keepdim=True)).pow(2)
        v = d.sum((2, 3), keepdim=True) / n
        e_inv = d / (4 * (v + self.e_lambda)) + 0.5
        return x * self.gate(e_inv)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"
