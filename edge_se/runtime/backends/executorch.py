"""ExecuTorch backend (optional ``executorch`` extra): runs an XNNPACK-delegated ``.pte`` file.

ExecuTorch's Python runtime links libtorch (inputs and outputs are torch tensors), and each
ExecuTorch release is built against one torch minor version: :func:`require_executorch` checks
the pair before anything is imported, since a mismatched pair fails at import or at run time.

A ``.pte`` plans its tensors for a maximum batch (the bound it was exported with, which the
method's metadata reports); a larger batch makes ExecuTorch itself fail with
``method->set_inputs() ... failed with error 0x10`` after logging "Attempted to resize a bounded
tensor", so the runner checks the batch first and says how to re-export.

``threads`` sizes ExecuTorch's thread pool, which is one per process: the last runner created
with ``threads`` decides for every runner of the process.
"""

from __future__ import annotations

import importlib.metadata
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_se.errors import BundleError, InputError, MissingDependencyError, first_line, missing_extra
from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import installed

#: ExecuTorch minor version -> the torch minor version its wheels are built against.
#: Verified from ``torch_pin.py`` (TORCH_VERSION) on the pytorch/executorch release branches
#: release/1.1 (2.11.0), release/1.2 (2.11.0), release/1.3 (2.12.0), release/1.4 (2.13.0); 1.5
#: from pytorch/test-infra PR #8837 (the 1.5.1 release check: executorch 1.5.1 with torch 2.14.0
#: and torchvision 0.29.0) and from running executorch 1.5.1 with torch 2.14.1 here.
TORCH_FOR_EXECUTORCH = {"1.1": "2.11", "1.2": "2.11", "1.3": "2.12", "1.4": "2.13", "1.5": "2.14"}


def _minor(version: str) -> str:
    parts = version.split("+")[0].split(".")
    return ".".join(parts[:2])


def require_executorch(purpose: str = "the ExecuTorch backend") -> tuple[str, str]:
    """Check that ExecuTorch is installed and built for the installed torch; import it.

    Returns ``(executorch_version, torch_version)``. Raises MissingDependencyError (exit 3)
    with one line when either package is missing or the pair does not match.
    """
    if not installed("executorch"):
        raise MissingDependencyError(
            f"{purpose} needs the optional package 'executorch' (1.5.x, built for torch 2.14.x), "
            "which is not installed; install it with: pip install 'edge-se[executorch]'"
        )
    if not installed("torch"):
        raise missing_extra("torch", "export", purpose)
    et_version = importlib.metadata.version("executorch")
    torch_version = importlib.metadata.version("torch")
    wanted = TORCH_FOR_EXECUTORCH.get(_minor(et_version))
    if wanted is not None and _minor(torch_version) != wanted:
        raise MissingDependencyError(
            f"executorch {et_version} is built for torch {wanted}.x, but torch {torch_version} is "
            f"installed; install a matching pair, e.g. pip install 'torch=={wanted}.*' "
            f"'executorch=={_minor(et_version)}.*'"
        )
    try:
        import executorch.runtime  # noqa: F401  (loads the native runtime, links libtorch)
    except ImportError as e:
        first = first_line(e)
        raise MissingDependencyError(
            f"executorch {et_version} cannot be imported with torch {torch_version}: {first}"
        ) from None
    return et_version, torch_version


class ExecuTorchRunner:
    """Runs the ``forward`` method of a ``.pte``; specs come from the manifest."""

    name = "executorch"

    def __init__(self, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int | None = None, batch_range: tuple[int, int | None] = (1, None)):
        self.version, _ = require_executorch()
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        self._torch = torch
        self._lib = portable_lib
        self.path = Path(path)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        if len(self.inputs) != 1:
            raise BundleError(f"the ExecuTorch backend runs one-input models, the manifest names {len(self.inputs)}")
        if threads is not None:
            if not isinstance(threads, int) or threads < 1:
                raise InputError(f"threads must be a positive integer or None, got {threads!r}")
            portable_lib._unsafe_reset_threadpool(threads)
        self.threads = threads
        if not self.path.is_file():
            raise BundleError(f"ExecuTorch program {self.path} does not exist")
        try:
            self._program = Runtime.get().load_program(self.path)
            self._method = self._program.load_method("forward")
            meta = self._method.metadata
            capacity = list(meta.input_tensor_meta(0).sizes())
        except Exception as e:  # the native loader raises RuntimeError, KeyError, ValueError
            first = first_line(e)
            raise BundleError(f"ExecuTorch cannot load {self.path}: {first}") from None
        static = self.inputs[0].static_batch
        lo, hi = (static, static) if static is not None else batch_range
        if hi is None:
            hi = capacity[0]
        if hi > capacity[0]:
            raise BundleError(
                f"{self.path} is planned for batches up to {capacity[0]}, but the manifest says {hi}; "
                "re-export the .pte with the manifest's max batch"
            )
        self.batch_range = (int(lo), int(hi))
        self._item_shape = tuple(capacity[1:])
        self._lock = threading.Lock()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        spec = self.inputs[0]
        try:
            x = feeds[spec.name]
        except KeyError:
            raise InputError(f"missing input {spec.name!r}; the model takes {spec.describe()}") from None
        x = np.ascontiguousarray(x, dtype=np.float32 if spec.dtype is None else spec.dtype)
        lo, hi = self.batch_range
        if x.ndim != len(self._item_shape) + 1 or tuple(x.shape[1:]) != self._item_shape:
            want = "x".join(str(d) for d in self._item_shape)
            raise InputError(f"input {spec.name!r} must be Nx{want}, got {'x'.join(map(str, x.shape))}")
        if not lo <= x.shape[0] <= hi:
            raise InputError(
                f"batch {x.shape[0]} is outside this .pte's batch range [{lo}, {hi}]; split the batch "
                f"or re-export the .pte with a larger max batch (XNNPACK plans for the bound)"
            )
        tensor = self._torch.from_numpy(x)
        with self._lock:
            if self._method is None:
                raise InputError("this ExecuTorch runner is closed")
            try:
                out = self._method.execute([tensor])
            except RuntimeError as e:
                first = first_line(e)
                raise InputError(f"ExecuTorch failed to run {self.path.name}: {first}") from None
            # copy while holding the lock: outputs must not alias runtime-owned memory
            return [np.array(t.numpy(), copy=True) if hasattr(t, "numpy") else np.asarray(t) for t in out]

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "version": self.version,
            "providers": ["xnnpack", "cpu"],
            "threads": int(self._lib._threadpool_get_thread_count()),
            "batch_range": list(self.batch_range),
        }

    def close(self) -> None:
        with self._lock:
            self._method = None
            self._program = None
