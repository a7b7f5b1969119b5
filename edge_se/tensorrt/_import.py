"""Import TensorRT lazily and say what to install when it is missing.

``EDGE_SE_TENSORRT=tensorrt_rtx`` selects TensorRT for RTX (strongly typed only, like 11.x).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from edge_se.errors import InputError, MissingDependencyError, missing_extra
from edge_se.tensorrt.versions import Version, parse_version

FLAVORS = ("tensorrt", "tensorrt_rtx")


@dataclass(frozen=True)
class TensorRT:
    """The imported bindings, which flavor they are, and their version."""

    module: Any
    flavor: str
    version: Version

    @property
    def version_text(self) -> str:
        return self.module.__version__


def available(flavor: str = "tensorrt") -> bool:
    """Whether the bindings are installed (without importing them; a bare ``tensorrt/`` folder on
    ``sys.path``, a namespace package with no code, does not count)."""
    from edge_se.runtime.backends.probe import installed

    return installed(flavor)


def import_tensorrt(flavor: str | None = None, purpose: str = "building a TensorRT engine") -> TensorRT:
    """Import the TensorRT bindings, or raise the one-line error naming the extra to install."""
    flavor = flavor or os.environ.get("EDGE_SE_TENSORRT", "tensorrt")
    if flavor not in FLAVORS:
        raise InputError(f"EDGE_SE_TENSORRT={flavor!r} is not one of {', '.join(FLAVORS)}")
    if not available(flavor):
        if flavor == "tensorrt_rtx":
            raise MissingDependencyError(
                f"{purpose} with TensorRT for RTX needs 'tensorrt-rtx-cu12', which is not installed; "
                "install it with: pip install tensorrt-rtx-cu12"
            )
        raise missing_extra("tensorrt", "tensorrt", purpose)
    try:
        module = importlib.import_module(flavor)
    except (ImportError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MissingDependencyError(
            f"{purpose}: the {flavor} Python bindings are installed but cannot load TensorRT's libraries "
            f"({first}); install the matching libraries (pip install 'edge-se[tensorrt]', or JetPack's "
            "python3-libnvinfer) and check LD_LIBRARY_PATH"
        ) from None
    if not isinstance(getattr(module, "__version__", None), str):
        raise MissingDependencyError(f"{purpose}: the module {flavor!r} found at {getattr(module, '__file__', None)} "
                                     "is not TensorRT's Python bindings (no __version__); install them with "
                                     "pip install 'edge-se[tensorrt]', or rename what shadows them")
    return TensorRT(module, flavor, parse_version(module.__version__.split("+")[0].split("a")[0][:16].rstrip(".")))
