"""Which backends can run here, found without importing torch or TensorRT.

``importlib.util.find_spec`` tells whether a package is installed; the CUDA driver is asked for
its device count through ``ctypes`` (no CUDA Python package needed).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path

from edge_se.errors import MissingDependencyError, missing_extra


def installed(package: str) -> bool:
    """True when ``package`` is installed (checked without importing it).

    A namespace package (no ``__init__.py``) counts only where pip or the OS installed it, under a
    ``site-packages``/``dist-packages`` folder (``executorch`` is one): a bare folder of that name
    elsewhere on ``sys.path`` (a ``tensorrt/`` folder in the working directory, or pytest's
    ``tests/tensorrt``) holds no bindings and does not count.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin not in (None, "namespace"):
        return True
    return any(part in ("site-packages", "dist-packages") for loc in (spec.submodule_search_locations or [])
               for part in Path(loc).parts)


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver or no GPU."""
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def tensorrt_available() -> bool:
    """TensorRT and Polygraphy (which runs the engines) are installed and a CUDA GPU is present."""
    return installed("tensorrt") and installed("polygraphy") and cuda_device_count() > 0


def require_tensorrt() -> None:
    """Raise MissingDependencyError naming what is missing for the TensorRT backend."""
    if not installed("tensorrt"):
        raise missing_extra("tensorrt", "tensorrt", "the TensorRT backend")
    if not installed("polygraphy"):
        raise missing_extra("polygraphy", "tensorrt", "the TensorRT backend")
    if cuda_device_count() == 0:
        raise MissingDependencyError(
            "the TensorRT backend needs an NVIDIA GPU, but the CUDA driver reports none; "
            "use --backend onnxruntime on this machine"
        )


def require_torch() -> None:
    """Raise MissingDependencyError when torch (for the TorchScript backend) is missing."""
    if not installed("torch"):
        raise missing_extra("torch", "export", "the TorchScript backend")


def require_openvino() -> None:
    """Raise MissingDependencyError when OpenVINO (for the openvino backend) is missing."""
    if not installed("openvino"):
        raise missing_extra("openvino", "openvino", "the OpenVINO backend")


def ort_gpu_providers() -> list[str]:
    """GPU execution providers of the installed ONNX Runtime, usable only with a GPU present."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in have]
    return wanted if wanted and cuda_device_count() > 0 else []
