"""Import TensorRT's bindings and NVIDIA's Polygraphy lazily, Polygraphy pointed at that flavor.

Polygraphy picks ``tensorrt`` or ``tensorrt_rtx`` when ``polygraphy.backend.trt`` is first imported,
from ``polygraphy.config.USE_TENSORRT_RTX`` (what ``POLYGRAPHY_USE_TENSORRT_RTX=1`` sets): one
flavor per process. Its log (TensorRT's comes through it) goes to Python's ``logging`` ("Polygraphy"
logger, warnings and up), never to stdout, where the command line writes its results.
Used by the runtime's TensorRT backend and by the build stage.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List

from edge_se.errors import InputError, MissingDependencyError, missing_extra
from edge_se.runtime.backends.probe import installed

FLAVORS = ("tensorrt", "tensorrt_rtx")
_LOCK = threading.Lock()


def load_bindings(flavor: str | None = None, purpose: str = "running a TensorRT engine") -> Any:
    """The TensorRT bindings module (``flavor``, else ``$EDGE_SE_TENSORRT``, else ``tensorrt``), or
    the one-line error naming what to install."""
    flavor = flavor or os.environ.get("EDGE_SE_TENSORRT", "tensorrt")
    if flavor not in FLAVORS:
        raise InputError(f"EDGE_SE_TENSORRT={flavor!r} is not one of {', '.join(FLAVORS)}")
    if not installed(flavor):
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
    return module


def flavor_of(trt: Any) -> str:
    """``tensorrt`` or ``tensorrt_rtx``: which bindings module ``trt`` is."""
    return "tensorrt_rtx" if getattr(trt, "__name__", "").startswith("tensorrt_rtx") else "tensorrt"


def import_polygraphy(flavor: str = "tensorrt", purpose: str = "building a TensorRT engine") -> Any:
    """``polygraphy.backend.trt`` set to ``flavor``, or the one-line error naming the extra."""
    if not installed("polygraphy"):
        raise missing_extra("polygraphy", "tensorrt", purpose)
    from polygraphy import config
    from polygraphy.logger import G_LOGGER

    rtx = flavor == "tensorrt_rtx"
    with _LOCK:
        if "polygraphy.backend.trt" in sys.modules and config.USE_TENSORRT_RTX != rtx:
            was = "tensorrt_rtx" if config.USE_TENSORRT_RTX else "tensorrt"
            raise InputError(f"{purpose} with {flavor}: Polygraphy is already set to {was} in this process; "
                             "use one TensorRT flavor per process (EDGE_SE_TENSORRT)")
        config.USE_TENSORRT_RTX = rtx
        if not G_LOGGER.use_python_logging_system:
            G_LOGGER.module_severity = G_LOGGER.WARNING
            G_LOGGER.letter = G_LOGGER.colors = False
            G_LOGGER.use_python_logging_system = True
            if logging.getLogger("Polygraphy").level == logging.NOTSET:
                logging.getLogger("Polygraphy").setLevel(logging.WARNING)
        import polygraphy.backend.trt as backend

    return backend


class _Sink(logging.Handler):
    def __init__(self, sink: List[str]) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname}: {record.getMessage().strip()}")


@contextmanager
def captured(sink: List[str]) -> Iterator[None]:
    """Polygraphy's warnings and errors while the block runs into ``sink`` (``"WARNING: ..."``,
    ``"ERROR: ..."``, ``"CRITICAL: ..."``) instead of Python's logging. Call :func:`import_polygraphy` first."""
    pylog = logging.getLogger("Polygraphy")
    handler = _Sink(sink)
    with _LOCK:
        pylog.addHandler(handler)
        pylog.propagate = False
    try:
        yield
    finally:
        with _LOCK:
            pylog.removeHandler(handler)
            pylog.propagate = not any(isinstance(h, _Sink) for h in pylog.handlers)
