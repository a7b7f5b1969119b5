"""Optional cache of ONNX Runtime-optimized models, for faster and leaner cold starts.

With ``graph_optimization="all"`` ONNX Runtime rewrites the graph on every load (NCHWc layouts,
fusions), which costs time and a transient copy of the weights. The first load with a cache
folder saves the optimized graph there; later loads read it with graph optimization off.

The saved graph is hardware-specific (ONNX Runtime warns so), so the cache key is the source
artifact's manifest sha256, the ONNX Runtime version, the optimization level and this CPU's
feature flags. Each entry is the model plus a sidecar JSON holding its own sha256, checked on
every load (a mismatch rebuilds the entry from the verified artifact). The cache folder is part
of the trusted code path: keep it writable only by the user that runs the runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge_se.bundle import atomic_path, atomic_write_json, sha256_file
from edge_se.errors import InputError
from edge_se.runtime.cpu import machine_tag


def check_cache_dir(cache_dir: str | Path) -> Path:
    """Refuse a cache folder that is a file, lies under a file, or cannot be written (one line)."""
    root = Path(cache_dir)
    fix = "pass a folder (it is created when missing) or leave --cache-dir out"
    if root.exists() and not root.is_dir():
        raise InputError(f"cache folder {root} exists and is not a folder; {fix}")
    parent = next((p for p in (root, *root.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"cache folder {root} cannot be created: {parent} is a file; {fix}")
    return root


@dataclass(frozen=True)
class CacheEntry:
    """One cached optimized model and its sidecar."""

    model: Path
    meta: Path
    source_sha256: str

    @classmethod
    def for_source(cls, cache_dir: str | Path, source_sha256: str, graph_optimization: str) -> "CacheEntry":
        import onnxruntime as ort

        key = hashlib.sha256(
            f"{source_sha256}|{ort.__version__}|{graph_optimization}|{machine_tag()}".encode()
        ).hexdigest()[:24]
        root = Path(cache_dir)
        return cls(root / f"{key}.onnx", root / f"{key}.json", source_sha256)

    def lookup(self, verify: bool = True) -> Path | None:
        """The cached model, or None when absent or when its sha256 does not match its sidecar."""
        if not (self.model.is_file() and self.meta.is_file()):
            return None
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if meta.get("source_sha256") != self.source_sha256:
            return None
        if verify and sha256_file(self.model) != meta.get("sha256"):
            return None
        return self.model

    def writer(self):
        """Context manager yielding the temporary path ONNX Runtime should save the optimized model to."""
        check_cache_dir(self.model.parent)
        try:
            self.model.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cache folder {self.model.parent} cannot be created ({e.strerror or e}); "
                             "pass a folder you can write to or leave --cache-dir out") from None
        if not os.access(self.model.parent, os.W_OK | os.X_OK):
            raise InputError(f"cache folder {self.model.parent} is not writable; "
                             "pass a folder you can write to or leave --cache-dir out")
        return atomic_path(self.model)

    def seal(self, extra: dict) -> None:
        """Write the sidecar (after the model file is in place)."""
        import onnxruntime as ort

        atomic_write_json(self.meta, {"source_sha256": self.source_sha256, "sha256": sha256_file(self.model),
                                      "onnxruntime": ort.__version__, "machine": machine_tag(), **extra})
