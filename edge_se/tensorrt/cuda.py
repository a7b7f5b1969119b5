"""CUDA device probing and device buffers, through cuda-python (or torch where present).

The probe runs before any TensorRT ``Builder`` or ``Runtime`` is made: a ``trt.Runtime``
constructed without a CUDA device crashes the process later instead of raising.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_se.errors import MissingDependencyError


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    compute_capability: str
    cuda_version: str | None
    driver_version: str | None
    backend: str


def _cudart() -> Any | None:
    for mod in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(mod)
        except ImportError:
            continue
    return None


def _torch() -> Any | None:
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _ver(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _check(result: Any, what: str) -> Any:
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA {what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def device_info(index: int = 0) -> DeviceInfo | None:
    """The CUDA device ``index``, or None when there is none (or no way to ask)."""
    rt = _cudart()
    if rt is not None:
        err, count = rt.cudaGetDeviceCount()
        if int(err) != 0 or count <= index:
            return None
        props = _check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
        runtime = _check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        driver = _check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        return DeviceInfo(name, f"{props.major}.{props.minor}", _ver(runtime), _ver(driver), "cuda-python")
    torch = _torch()
    if torch is not None and torch.cuda.is_available() and torch.cuda.device_count() > index:
        major, minor = torch.cuda.get_device_capability(index)
        return DeviceInfo(torch.cuda.get_device_name(index), f"{major}.{minor}", torch.version.cuda, None, "torch")
    return None


def require_device(purpose: str) -> DeviceInfo:
    """The first CUDA device, or a MissingDependencyError saying what is missing."""
    if _cudart() is None and _torch() is None:
        raise MissingDependencyError(
            f"{purpose} needs CUDA device access through 'cuda-python' (or torch), which is not installed; "
            "install it with: pip install 'edge-se[tensorrt]'"
        )
    info = device_info()
    if info is None:
        raise MissingDependencyError(
            f"{purpose} needs an NVIDIA GPU with a working driver, and none was found; run it on the device "
            "that will run the engine"
        )
    return info


class DeviceBuffer:
    """One device allocation with host<->device copies (cuda-python, else torch)."""

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self._rt = _cudart()
        self._tensor = None
        if self._rt is not None:
            self.ptr = int(_check(self._rt.cudaMalloc(self.nbytes), "cudaMalloc"))
        else:
            torch = _torch()
            if torch is None:
                raise MissingDependencyError("device buffers need 'cuda-python' or torch: pip install 'edge-se[tensorrt]'")
            self._tensor = torch.empty(self.nbytes, dtype=torch.uint8, device="cuda")
            self.ptr = int(self._tensor.data_ptr())

    def upload(self, array: np.ndarray, stream: Any = None) -> None:
        array = np.ascontiguousarray(array)
        if array.nbytes > self.nbytes:
            raise ValueError(f"array of {array.nbytes} bytes does not fit a {self.nbytes}-byte buffer")
        if self._rt is not None:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            _check(self._rt.cudaMemcpy(self.ptr, array.ctypes.data, array.nbytes, kind), "cudaMemcpy")
        else:
            import torch

            self._tensor[: array.nbytes].copy_(torch.from_numpy(array.view(np.uint8).reshape(-1)))

    def download(self, out: np.ndarray) -> np.ndarray:
        if self._rt is not None:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            _check(self._rt.cudaMemcpy(out.ctypes.data, self.ptr, out.nbytes, kind), "cudaMemcpy")
        else:
            out.view(np.uint8).reshape(-1)[:] = self._tensor[: out.nbytes].cpu().numpy()
        return out

    def free(self) -> None:
        if self._rt is not None and self.ptr:
            self._rt.cudaFree(self.ptr)
        self._tensor = None
        self.ptr = 0


class Stream:
    """A CUDA stream handle (an int TensorRT accepts) with synchronize()."""

    def __init__(self) -> None:
        self._rt = _cudart()
        if self._rt is not None:
            self._stream = _check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
            self.handle = int(self._stream)
        else:
            import torch

            self._stream = torch.cuda.Stream()
            self.handle = int(self._stream.cuda_stream)

    def synchronize(self) -> None:
        if self._rt is not None:
            _check(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        else:
            self._stream.synchronize()

    def destroy(self) -> None:
        if self._rt is not None and self._stream is not None:
            self._rt.cudaStreamDestroy(self._stream)
        self._stream = None
