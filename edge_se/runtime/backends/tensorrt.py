"""TensorRT backend: a thin adapter over :class:`~edge_se.runtime.backends.tensorrt_runner.TensorRTRunner`.

An execution context is not thread-safe, so the adapter keeps a pool of activated runners (one
context each), created on demand up to ``max_contexts`` and lent to one thread at a time. The
first runner deserializes the engine and checks its sidecar against this machine; the others are
contexts on that same engine (``TensorRTRunner.sibling``), so the engine is in memory once.
Engine files are code-like (plugins run native code): load only engines from a trusted source.
Not verified on a GPU here (no GPU on the development machine); its tests are marked ``gpu``.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import require_tensorrt


def _runner_class():
    require_tensorrt()
    from edge_se.runtime.backends.tensorrt_runner import TensorRTRunner

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
        first = self._new_runner(check_sidecar=True)
        self._idle.put(first)
        declared = {s.name: s for s in inputs}
        self.inputs = [self._input_spec(first, name, declared.get(name)) for name in first.inputs]
        self.outputs = [TensorSpec(n, (), np.dtype("float32")) for n in first.outputs]
        self.version = getattr(getattr(first, "trt", None), "__version__", "unknown")

    @staticmethod
    def _input_spec(runner, name: str, declared: TensorSpec | None) -> TensorSpec:
        lo, _, hi = runner.profile_shapes(name)
        shape = tuple(a if a == b else None for a, b in zip(lo, hi))
        dtype = declared.dtype if declared is not None else np.dtype(runner._dtype(name))
        return TensorSpec(name, shape, dtype, (int(lo[0]), int(hi[0])))

    def _new_runner(self, check_sidecar: bool = False):
        """The first runner deserializes the engine (and checks its sidecar); the others are its
        siblings: a context each on that one engine, never another copy of it in device memory."""
        with self._lock:
            first = self._all[0] if self._all else None
        runner = first.sibling() if first is not None else self._cls(self.path, check_sidecar=check_sidecar).activate()
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
            out = runner.infer(feeds)
        finally:
            self._idle.put(runner)
        return [out[s.name] for s in self.outputs]

    def describe(self) -> dict:
        return {"backend": self.name, "version": self.version, "providers": ["cuda"],
                "contexts": len(self._all), "max_contexts": self.max_contexts}

    def close(self) -> None:
        for runner in reversed(self._all):  # the siblings' contexts before the engine's owner
            runner.deactivate()
        self._all.clear()
