"""The attention zoo: one file per module, ``channels`` first, paper defaults.

=========  ==========================  ==================================================
type       class                       gate submodule(s) (for forward hooks)
=========  ==========================  ==================================================
``se``     :class:`SEModule`           ``gate`` (sigmoid on channel weights)
``cbam``   :class:`CBAM`               ``channel_gate.gate``, ``spatial_gate.gate``
``bam``    :class:`BAM`                ``gate`` (sigmoid of channel + spatial; out = 1 + it)
``sk``     :class:`SelectiveKernel`    ``softmax`` (branch weights, softmax over dim 1)
``simam``  :class:`SimAM`              ``gate`` (sigmoid of the inverse energy)
``eca``    :class:`ECA`                ``gate`` (sigmoid on channel weights)
=========  ==========================  ==================================================

Every forward is built from shape-agnostic tensor ops and traces / exports to ONNX with dynamic
batch and spatial size. ``act_layer`` / ``gate_layer`` accept an ``nn.Module`` class or a name
from :data:`LAYER_NAMES`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from edge_se.attention._layers import LAYER_NAMES, LayerSpec
from edge_se.attention.bam import BAM
from edge_se.attention.cbam import CBAM, ChannelGate, SpatialGate
from edge_se.attention.eca import ECA, eca_kernel_size
from edge_se.attention.se import SEModule
from edge_se.attention.simam import SimAM
from edge_se.attention.sk import SelectiveKernel
from edge_se.errors import InputError

__all__ = [
    "ATTENTION_CLASSES", "ATTENTION_TYPES", "BAM", "CBAM", "ChannelGate", "ECA", "LAYER_NAMES",
    "LayerSpec", "SEModule", "SelectiveKernel", "SimAM", "SpatialGate", "create_attn",
    "eca_kernel_size", "gate_modules", "is_attention_module",
]

#: The attention type names accepted by :func:`create_attn`, in zoo order.
ATTENTION_TYPES: tuple[str, ...] = ("se", "cbam", "bam", "sk", "simam", "eca")

#: Type name -> class. ``ChannelGate``/``SpatialGate`` are parts of CBAM, not zoo entries.
ATTENTION_CLASSES: dict[str, type[nn.Module]] = {
    "se": SEModule, "cbam": CBAM, "bam": BAM, "sk": SelectiveKernel, "simam": SimAM, "eca": ECA,
}

# create_attn fixes these for SK (stride 1, channels -> channels).
_SK_FIXED = ("out_channels", "stride")


def create_attn(attn_type: str | None, channels: int, **kwargs: Any) -> nn.Module:
    """Build the attention module ``attn_type`` for ``channels`` channels.

    ``None`` or ``""`` gives ``nn.Identity()``. ``"sk"`` gives a stride-1, ``channels ->
    channels`` :class:`SelectiveKernel`; ``"simam"`` takes no ``channels`` (it has no weights).
    ``kwargs`` go to the class; an unknown type or keyword raises :class:`InputError`.
    """
    if attn_type is None or attn_type == "":
        if kwargs:
            raise InputError(
                f"create_attn: no attention type was given, so the options {sorted(kwargs)} would be "
                f"ignored; name a type ({', '.join(ATTENTION_TYPES)}) or drop the options"
            )
        return nn.Identity()
    if attn_type not in ATTENTION_CLASSES:
        raise InputError(
            f"create_attn: unknown attention type {attn_type!r}; expected one of "
            f"{', '.join(ATTENTION_TYPES)} (or None for no attention)"
        )
    cls = ATTENTION_CLASSES[attn_type]
    accepted = [p for p in inspect.signature(cls).parameters if p != "channels"]
    if cls is SelectiveKernel:
        accepted = [p for p in accepted if p not in _SK_FIXED]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        hint = " (create_attn builds SK stride-1 channels->channels; use SelectiveKernel directly)" if (
            cls is SelectiveKernel and set(unknown) & set(_SK_FIXED)) else ""
        raise InputError(
            f"create_attn: {attn_type!r} does not accept {', '.join(unknown)}; accepted options: "
            f"{', '.join(accepted) or 'none'}{hint}"
        )
    if cls is SimAM:
        return SimAM(**kwargs)
    return cls(channels, **kwargs)


def is_attention_module(module: nn.Module) -> bool:
    """True for an instance of one of the six zoo classes (not for CBAM's halves alone)."""
    return isinstance(module, tuple(ATTENTION_CLASSES.values()))


def gate_modules(module: nn.Module) -> dict[str, nn.Module]:
    """The named gate submodule(s) of an attention module, for forward hooks.

    Keys are dotted names relative to ``module`` (``{"gate": ...}``; CBAM:
    ``{"channel_gate.gate": ..., "spatial_gate.gate": ...}``; SK: ``{"softmax": ...}``). The
    hooked output is the gate tensor: channel weights, spatial map, or SK branch weights.
    ``ChannelGate``/``SpatialGate`` are accepted too. Anything else raises :class:`InputError`.
    """
    names = getattr(type(module), "GATE_NAMES", None)
    if not (is_attention_module(module) or isinstance(module, (ChannelGate, SpatialGate))) or not names:
        raise InputError(
            f"gate_modules: expected an edge_se attention module ({', '.join(ATTENTION_TYPES)}), "
            f"found {type(module).__name__}; use is_attention_module() to pick the blocks first"
        )
    return {name: module.get_submodule(name) for name in names}
