"""Runtime backends, one module each (onnxruntime, tensorrt, torchscript).

Each module defines a runner with the same small interface (see :mod:`.base`) and imports its
framework lazily, so importing this package costs nothing; :mod:`.probe` tells which backends
can run here without importing them.
"""
