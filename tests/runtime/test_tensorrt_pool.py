"""The TensorRT backend's context pool (decision code; the GPU run is tests/runtime/test_tensorrt.py).

One engine, many contexts: the first runner deserializes the engine, every further pooled context
is its sibling. The runner here is a counting stand-in for edge-se's own TensorRTRunner class (not
for TensorRT): it records what the pool asks of it.
"""

from __future__ import annotations

import threading

import numpy as np

from edge_se.runtime.backends import tensorrt as backend


class CountingRunner:
    deserialized = 0
    contexts = 0

    def __init__(self, path, check_sidecar=True, flavor=None):
        self.path, self.check = path, check_sidecar
        self.inputs, self.outputs = ["input"], ["logits"]

    def activate(self):
        CountingRunner.deserialized += 1
        CountingRunner.contexts += 1
        return self

    def sibling(self):
        CountingRunner.contexts += 1
        other = CountingRunner(self.path, check_sidecar=False)
        other.owner = self
        return other

    def profile_shapes(self, name):
        return (1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)

    def _dtype(self, name):
        return np.float32

    def infer(self, feeds):
        threading.Event().wait(0.05)  # hold the context so the pool must grow
        return {"logits": np.zeros((len(feeds["input"]), 2), np.float32)}

    def deactivate(self):
        pass


def test_pooled_contexts_share_one_deserialized_engine(monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "_runner_class", lambda: CountingRunner)
    CountingRunner.deserialized = CountingRunner.contexts = 0
    b = backend.TensorRTBackend(tmp_path / "x.engine", [], [], max_contexts=4)
    x = {"input": np.zeros((1, 3, 8, 8), np.float32)}
    threads = [threading.Thread(target=b.infer, args=(x,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert CountingRunner.deserialized == 1 and 2 <= CountingRunner.contexts <= 4
    assert b.describe()["contexts"] == CountingRunner.contexts
    assert all(getattr(r, "owner", b._all[0]) is b._all[0] for r in b._all)
    assert b._all[0].check and not any(r.check for r in b._all[1:])  # the sidecar is checked once
    b.close()
