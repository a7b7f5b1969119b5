"""The model zoo registry: entry points registered by decorator, looked up by name.

Entry points are small functions (one screen long) that build a model; ``@register_model``
records them with the metadata the command line and the export stage need (default input shape,
attention type, family, a one-line description from the docstring). Registering a name twice
raises :class:`DuplicateModelError` at import time; an unknown name raises
:class:`~edge_se.errors.ModelSpecError` listing close matches.

This module does not import torch at import time (only :func:`count_params` needs it).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, overload

from edge_se.errors import ModelSpecError

F = TypeVar("F", bound=Callable[..., Any])

#: The modules whose import registers the zoo (imported on first lookup).
ZOO_MODULES = ("edge_se.models.resnet", "edge_se.models.digits")


class DuplicateModelError(ModelSpecError):
    """Two entry points were registered under the same zoo name (a packaging bug)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about a model without building it."""

    name: str
    family: str | None
    attention_type: str | None
    default_input_shape: tuple[int, ...] | None
    description: str
    num_classes: int | None
    entrypoint: Callable[..., Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the entry point)."""
        return {
            "name": self.name,
            "family": self.family,
            "attention_type": self.attention_type,
            "default_input_shape": list(self.default_input_shape) if self.default_input_shape else None,
            "num_classes": self.num_classes,
            "description": self.description,
        }


_REGISTRY: dict[str, ModelInfo] = {}


def _first_doc_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _register(
    fn: F,
    family: str | None,
    attention: str | None,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
) -> F:
    name = fn.__name__
    if name in _REGISTRY:
        prev = _REGISTRY[name].entrypoint
        raise DuplicateModelError(
            f"zoo model name '{name}' is registered twice ({prev.__module__}.{prev.__qualname__} and "
            f"{fn.__module__}.{fn.__qualname__}); rename one of the entry points"
        )
    _REGISTRY[name] = ModelInfo(
        name=name,
        family=family,
        attention_type=attention,
        default_input_shape=tuple(input_shape) if input_shape else None,
        description=_first_doc_line(fn),
        num_classes=num_classes,
        entrypoint=fn,
    )
    return fn


@overload
def register_model(fn: F) -> F: ...
@overload
def register_model(
    *,
    family: str | None = None,
    attention: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> Callable[[F], F]: ...
def register_model(
    fn: Callable[..., Any] | None = None,
    *,
    family: str | None = None,
    attention: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> Any:
    """Register a model entry point under its function name (timm style).

    Use bare (``@register_model``) or with metadata
    (``@register_model(family="resnet", attention="se", input_shape=(1, 3, 224, 224))``).
    The first docstring line becomes the description. A duplicate name raises
    :class:`DuplicateModelError`.
    """
    if fn is not None:
        return _register(fn, family, attention, input_shape, num_classes)
    return lambda f: _register(f, family, attention, input_shape, num_classes)


def _ensure_zoo() -> None:
    import importlib

    for mod in ZOO_MODULES:
        importlib.import_module(mod)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def matching(names: Any, pattern: str | None = None) -> list[str]:
    """``names`` in natural order (resnet18 < resnet101), filtered by ``pattern``: a shell wildcard
    (``se_*``) or, without wildcard characters, a substring."""
    names = sorted(names, key=_natural_key)
    if not pattern:
        return names
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def list_models(pattern: str | None = None) -> list[str]:
    """Zoo names in natural order, filtered by ``pattern`` as :func:`matching` does."""
    _ensure_zoo()
    return matching(_REGISTRY, pattern)


def is_model(name: str) -> bool:
    """True when ``name`` is a zoo model."""
    _ensure_zoo()
    return name in _REGISTRY


def unknown_name_error(kind: str, name: str, known: list[str], how_to_list: str) -> ModelSpecError:
    """The standard "unknown model" error with close matches (shared by zoo/torchvision/timm)."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"did you mean: {', '.join(close)}? " if close else ""
    return ModelSpecError(f"unknown {kind} model '{name}'; {hint}{how_to_list}")


def model_info(name: str) -> ModelInfo:
    """Metadata of a zoo model; raises ModelSpecError (with close matches) for an unknown name."""
    _ensure_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error(
            "zoo",
            name,
            sorted(_REGISTRY),
            f"run `edge-se models` to list the {len(_REGISTRY)} zoo models, "
            "or use torchvision:NAME, timm:NAME or path/to/file.py:factory",
        ) from None


def create_model(name: str, **kwargs: Any) -> Any:
    """Build zoo model ``name`` (random init, train mode) with keyword overrides such as ``num_classes``."""
    info = model_info(name)
    try:
        inspect.signature(info.entrypoint).bind(**kwargs)
    except TypeError:
        params = ", ".join(inspect.signature(info.entrypoint).parameters) or "none"
        raise ModelSpecError(
            f"zoo model '{name}' does not accept the options {sorted(kwargs)}; it accepts: {params}"
        ) from None
    return info.entrypoint(**kwargs)


def count_params(name: str, **kwargs: Any) -> int:
    """Parameter count of a zoo model, built on the meta device (no memory, no init cost)."""
    import torch

    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())
