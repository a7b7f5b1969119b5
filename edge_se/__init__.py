"""edge-se: attention-augmented CNNs from PyTorch to validated edge deployment bundles.

Importing the package is cheap: heavy dependencies (torch, onnx, tensorrt) are imported by the
submodules that need them, so the embedded runtime (`edge_se.runtime`) runs without torch.
"""

__version__ = "0.1.0"
