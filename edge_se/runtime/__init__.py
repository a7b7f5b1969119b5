"""The embedded inference runtime: runs a bundle on the device, without torch.

>>> from edge_se.runtime import Runtime
>>> rt = Runtime.load("bundles/se18")                 # verifies sha256, picks the backend
>>> rt.classify("cat.jpg", k=5)                        # [[TopK(index, score, label), ...]]
>>> rt.predict(np.zeros((8, 3, 224, 224), np.float32)) # raw first output

Imports only the standard library, NumPy, Pillow, ONNX Runtime (lazily) and the torch-free
``edge_se.bundle``/``preprocess``/``errors``; the TorchScript backend imports torch only when
asked for, the TensorRT backend imports TensorRT only when it runs.
"""

from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.probe import cuda_device_count, tensorrt_available
from edge_se.runtime.core import Runtime, TopK, top_k
from edge_se.runtime.source import BACKENDS, read_labels

__all__ = ["BACKENDS", "Runtime", "TensorSpec", "TopK", "cuda_device_count", "read_labels", "tensorrt_available", "top_k"]
