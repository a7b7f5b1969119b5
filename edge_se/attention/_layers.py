"""Small helpers shared by the attention modules: layer factories and reduction widths."""

from __future__ import annotations

from typing import Callable, Union

from torch import nn

from edge_se.errors import InputError

#: A layer argument: a name from :data:`LAYER_NAMES` or a zero-argument callable (usually an
#: ``nn.Module`` subclass such as ``nn.Sigmoid``) that returns a module.
LayerSpec = Union[str, Callable[[], nn.Module]]

LAYER_NAMES: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "hard_swish": nn.Hardswish,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def make_layer(spec: LayerSpec, role: str) -> nn.Module:
    """Build a fresh module from a layer name or a zero-argument factory.

    ``role`` names the argument (e.g. ``"SEModule gate_layer"``) for the error message.
    """
    if isinstance(spec, str):
        if spec not in LAYER_NAMES:
            raise InputError(
                f"{role}: expected one of {', '.join(sorted(LAYER_NAMES))} or an nn.Module class, "
                f"found {spec!r}; pass a listed name or a class such as torch.nn.Sigmoid"
            )
        return LAYER_NAMES[spec]()
    if not callable(spec):
        raise InputError(
            f"{role}: expected a layer name or an nn.Module class, found {type(spec).__name__}; "
            f"pass e.g. 'sigmoid' or torch.nn.Sigmoid"
        )
    layer = spec()
    if not isinstance(layer, nn.Module):
        raise InputError(
            f"{role}: the factory returned {type(layer).__name__}, expected an nn.Module; "
            f"pass an nn.Module class such as torch.nn.Sigmoid"
        )
    return layer


def check_channels(channels: int, where: str, name: str = "channels") -> int:
    """Return ``channels`` if it is a positive int, else raise :class:`InputError`."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise InputError(f"{where}: expected {name} to be a positive int, found {channels!r}")
    return channels


def reduced_channels(
    channels: int, rd_ratio: float, rd_channels: int | None, where: str, minimum: int = 1
) -> int:
    """Hidden width of a bottleneck: ``rd_channels`` if given, else ``max(round(C * rd_ratio), minimum)``."""
    if rd_channels is not None:
        return check_channels(rd_channels, where, "rd_channels")
    if not isinstance(rd_ratio, (int, float)) or isinstance(rd_ratio, bool) or rd_ratio <= 0:
        raise InputError(f"{where}: expected rd_ratio to be a positive number, found {rd_ratio!r}")
    return max(int(round(channels * rd_ratio)), minimum)


def is_odd_int(value: object, minimum: int = 1) -> bool:
    """True for an odd int ``>= minimum`` (a kernel size that keeps the size with 'same' padding)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum and value % 2 == 1
