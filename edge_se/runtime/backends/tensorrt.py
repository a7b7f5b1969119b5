"""TensorRT backend: a thin adapter over ``edge_se.tensorrt.runner.TensorRTRunner``.

An execution context is not thread-safe, so the adapter keeps a pool of runners (one engine
context each), created on demand up to ``max_contexts`` and handed to one thread at a time.
Engine files are code-like (plugins run native code): load only engines from a trusted source.
Not verified on a GPU in this repository's CI (no GPU there); tests are marked ``gpu``.

What the adapter needs from ``TensorRTRunner``: ``TensorRTRunner(engine_path)``,
``infer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray] | list[np.ndarray]``, optional
``batch_range -> (min, max)`` (the optimization profile) and ``close()``.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_se.errors import MissingDependencyError
from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import require_tensorrt


def _runner_class():
    require_tensorrt()
    try:
        from edge_se.tensorrt.runner import TensorRTRunner
    except ImportError as e:
        raise MissingDependencyError(
            f"the TensorRT backend could not import edge_se.tensorrt.runner ({e}); "
            "reinstall with: pip install 'edge-se[tensorrt]'"
        ) from None
    return TensorRTRunner


class TensorRTBackend:
    """Runs a serialized TensorRT engine through a pool of ``TensorRTRunner`` contexts."""

    name = "tensorrt"

    def __init__(self, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 max_contexts: int = 4):
        self._cls = _runner_class()
        self.path = Path(path)
        self.max_contexts = max(1, int(max_contexts))
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._all: list = []
        self._lock = threading.Lock()
        first = self._new_runner()
        self._idle.put(first)
        batch_range = getattr(first, "batch_range", None)
        self.inputs = [
            TensorSpec(s.name, s.shape, s.dtype, tuple(batch_range) if batch_range else s.batch_range) for s in inputs
        ]
        self.outputs = list(outputs)

    def _new_runner(self):
        runner = self._cls(self.path)
        with self._lock:
            self._all.append(runner)
        return runner

    def _acquire(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                room = len(self._all) < self.max_contexts
            return self._new_runner() if room else self._idle.get()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        runner = self._acquire()
        try:
            out = runner.infer(dict(feeds))
        finally:
            self._idle.put(runner)
        if isinstance(out, dict):
            return [np.asarray(out[s.name]) for s in self.outputs] if self.outputs else list(out.values())
        return [np.asarray(o) for o in out]

    def describe(self) -> dict:
        import tensorrt

        return {"backend": self.name, "version": tensorrt.__version__, "providers": ["cuda"],
                "contexts": len(self._all), "max_contexts": self.max_contexts}

    def close(self) -> None:
        for runner in self._all:
            close = getattr(runner, "close", None)
            if close:
                close()
        self._all.clear()
