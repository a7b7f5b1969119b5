"""The model zoo and model loading.

- :mod:`edge_se.models.registry`: ``@register_model``, :func:`list_models`, :func:`create_model`,
  :func:`model_info`, :func:`count_params`.
- :mod:`edge_se.models.resnet`: the attention-ResNets (``se_resnet18`` ... ``eca_resnet50``).
- :mod:`edge_se.models.digits`: small attention CNNs for 1x1x32x32 digits (``se_digits`` ...).
- :mod:`edge_se.models.loading`: :func:`resolve_model` (zoo / ``torchvision:`` / ``timm:`` /
  ``file.py:factory`` specs) and :func:`load_checkpoint` (``weights_only=True``).

Importing this package does not import torch; the zoo modules are imported on first lookup.
"""

from edge_se.models.loading import CheckpointInfo, LoadedModel, ModelSpec, load_checkpoint, parse_spec, resolve_model
from edge_se.models.registry import (
    DuplicateModelError,
    ModelInfo,
    count_params,
    create_model,
    is_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "CheckpointInfo", "DuplicateModelError", "LoadedModel", "ModelInfo", "ModelSpec", "count_params",
    "create_model", "is_model", "list_models", "load_checkpoint", "model_info", "parse_spec",
    "register_model", "resolve_model",
]
