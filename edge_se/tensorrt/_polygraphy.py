"""Import NVIDIA's Polygraphy lazily, pointed at the TensorRT flavor in use, and route its log.

Polygraphy picks ``tensorrt`` or ``tensorrt_rtx`` when ``polygraphy.backend.trt`` is first imported,
from ``polygraphy.config.USE_TENSORRT_RTX`` (what ``POLYGRAPHY_USE_TENSORRT_RTX=1`` sets): one
flavor per process.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from edge_se.errors import InputError, missing_extra


def flavor_of(trt: Any) -> str:
    """``tensorrt`` or ``tensorrt_rtx``: which bindings module ``trt`` is."""
    return "tensorrt_rtx" if getattr(trt, "__name__", "").startswith("tensorrt_rtx") else "tensorrt"


def import_polygraphy(flavor: str = "tensorrt", purpose: str = "building a TensorRT engine") -> Any:
    """``polygraphy.backend.trt`` set to ``flavor``, or the one-line error naming the extra."""
    from edge_se.runtime.backends.probe import installed

    if not installed("polygraphy"):
        raise missing_extra("polygraphy", "tensorrt", purpose)
    from polygraphy import config

    rtx = flavor == "tensorrt_rtx"
    if "polygraphy.backend.trt" in sys.modules and config.USE_TENSORRT_RTX != rtx:
        was = "tensorrt_rtx" if config.USE_TENSORRT_RTX else "tensorrt"
        raise InputError(f"{purpose} with {flavor}: Polygraphy is already set to {was} in this process; "
                         "use one TensorRT flavor per process (EDGE_SE_TENSORRT)")
    config.USE_TENSORRT_RTX = rtx
    import polygraphy.backend.trt as backend

    return backend


class _Sink(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname}: {record.getMessage().strip()}")


@contextmanager
def captured(sink: list[str]) -> Iterator[None]:
    """Polygraphy's warnings and errors (TensorRT's come through its logger) into ``sink`` as
    ``"WARNING: ..."`` / ``"ERROR: ..."`` / ``"CRITICAL: ..."`` instead of stdout."""
    from polygraphy.logger import G_LOGGER

    pylog = logging.getLogger("Polygraphy")
    saved = (G_LOGGER.module_severity, G_LOGGER.use_python_logging_system, G_LOGGER.letter,
             G_LOGGER.colors, pylog.propagate)
    handler = _Sink(sink)
    G_LOGGER.module_severity = G_LOGGER.WARNING
    G_LOGGER.use_python_logging_system = True
    G_LOGGER.letter = G_LOGGER.colors = False
    pylog.addHandler(handler)
    pylog.propagate = False
    try:
        yield
    finally:
        pylog.removeHandler(handler)
        (G_LOGGER.module_severity, G_LOGGER.use_python_logging_system, G_LOGGER.letter,
         G_LOGGER.colors, pylog.propagate) = saved
