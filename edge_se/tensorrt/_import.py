"""Import TensorRT lazily and say what to install when it is missing.

``EDGE_SE_TENSORRT=tensorrt_rtx`` selects TensorRT for RTX (strongly typed only, like 11.x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_se.tensorrt.versions import Version, parse_version


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
    from edge_se.runtime.backends.trt_polygraphy import flavor_of, load_bindings

    module = load_bindings(flavor, purpose)
    return TensorRT(module, flavor_of(module), parse_version(module.__version__.split("+")[0].split("a")[0][:16].rstrip(".")))
