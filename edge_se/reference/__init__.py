"""edge_se.reference: what every stage compares with, below the stages that use it.

``rebuild`` (the PyTorch reference rebuilt from a manifest, or ONNX Runtime FP32 for a bundle
imported from ONNX), ``check`` (runners for ONNX Runtime, TorchScript and the torch.export files,
and the numerics checks recorded in a manifest), ``numerics`` and ``tolerances`` (the comparison
and its per-precision rules), ``inputs`` (real images and seeded noise). The export, quantize,
tensorrt and serving stages import these; nothing here imports a stage.
"""
