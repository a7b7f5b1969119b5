"""edge_se.quantize: FP16 and INT8 artifacts from one calibration run (docs/quantization.md).

Modules: ``ranges`` (calibration statistics -> per-tensor ranges: minmax, percentile, entropy,
mse), ``qdq_trt`` (TensorRT-ready QDQ), ``cpu_int8`` (CPU-fast U8S8 for ONNX Runtime),
``trt_cache`` (TensorRT calibration cache), ``fp16``, ``policies`` (all, keep-gates, auto),
``patterns`` (attention gates by graph pattern), ``metrics``, ``stage`` (bundle -> bundle).
"""

from edge_se._callable import make_callable

make_callable(__name__)  # edge_se.quantize(...) is the API call (edge_se/api.py)
