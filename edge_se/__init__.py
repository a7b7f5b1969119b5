"""edge-se: attention-augmented CNNs from PyTorch to validated edge deployment bundles.

Importing the package is cheap: heavy dependencies (torch, onnx, tensorrt) are imported by the
submodules that need them, so the embedded runtime (`edge_se.runtime`) runs without torch.
The Python API (``edge_se.export``, ``quantize``, ``build``, ``validate``, ``Runtime``; see
docs/api.md) is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("export", "quantize", "build", "validate", "Runtime", "ExportResult", "QuantizeResult", "BuildResult",
        "ValidateResult", "Check", "PrecisionDecision", "MatrixRow")


_STAGE_PACKAGES = ("export", "quantize", "validate")


def __getattr__(name: str) -> Any:
    """``edge_se.export`` and the rest of the API, imported from :mod:`edge_se.api` when first used."""
    if name in _STAGE_PACKAGES:  # the sub-package, callable as the API function (edge_se/_callable.py)
        import importlib

        return importlib.import_module(f"edge_se.{name}")
    if name in _API:
        from edge_se import api

        return getattr(api, name)
    raise AttributeError(f"module 'edge_se' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
