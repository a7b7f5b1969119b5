"""CUDA device probing through cuda-python (or torch where present); device buffers are Polygraphy's.

The probe runs before any TensorRT ``Builder`` or ``Runtime`` is made: a ``trt.Runtime``
constructed without a CUDA device crashes the process later instead of raising. The sidecar check
uses what it reports (GPU name, compute capability, CUDA and driver versions).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

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
