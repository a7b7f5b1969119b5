"""Which zoo models the suite runs and at which small shape (imported by name: tests/ is no package)."""

from __future__ import annotations

from edge_se.models.registry import model_info

#: the deep SE-ResNets take minutes each: marked slow or left to their own tests
HEAVY = {"se_resnet101", "se_resnet152"}


def zoo_shape(name: str) -> tuple[int, ...]:
    """224-class backbones at 64x64 (the export is resolution-agnostic); digits nets at their own 1x1x32x32."""
    default = model_info(name).default_input_shape
    return tuple(default) if default and default[-1] <= 64 else (1, default[1] if default else 3, 64, 64)


def digits_recipe(name: str, target: str, tensorrt: str, precision: str, extra: str = "") -> str:
    """Recipe TOML for the 1x1x32x32 se_digits bundle (profile batch 1..4): ``precision`` holds the
    lines of its [precision] table, ``extra`` any further tables."""
    return (f'name = "{name}"\n[model]\nspec = "se_digits"\ninput_shape = [1, 1, 32, 32]\nbatch = [1, 1, 4]\n'
            f'[target]\nname = "{target}"\ntensorrt = "{tensorrt}"\n[precision]\n{precision}\n{extra}')
