"""The manifest's shared vocabulary: artifact formats and the precision decision, one spelling each.

Stages that write an artifact and stages that read one import these names from here instead of
spelling strings of their own (a writer and a reader that spelled one format two ways left the
calibration cache and the engines invisible to the stages after them). Standard library only.
"""

from __future__ import annotations

from typing import Any

ONNX = "onnx"
TORCHSCRIPT = "torchscript"
#: torch.export ``ExportedProgram`` (``model.pt2``)
TORCH_EXPORT = "torch-export"
#: AOTInductor package (``model.aoti.pt2``): compiled native code for one CPU architecture
AOTI_PACKAGE = "aoti-package"
#: ExecuTorch program with the XNNPACK delegate (``model.pte``)
EXECUTORCH = "executorch"
TENSORRT_ENGINE = "tensorrt-engine"
TENSORRT_CALIBRATION_CACHE = "tensorrt-calibration-cache"
#: every artifact ``format`` a manifest may hold (stages spell none of them themselves: a test checks)
ARTIFACT_FORMATS = (ONNX, TORCHSCRIPT, TORCH_EXPORT, AOTI_PACKAGE, EXECUTORCH, TENSORRT_ENGINE, TENSORRT_CALIBRATION_CACHE)
#: the TensorRT-ready Q/DQ file whose precision decision TensorRT builds honour
TRT_QDQ_ARTIFACT = "model.int8.trt.onnx"
#: ``model.source`` of a bundle made from an ONNX file (no PyTorch model: ONNX Runtime FP32 is the reference)
ONNX_SOURCE = "onnx"
#: the imported ONNX file as given, kept in the bundle as that reference
ONNX_REFERENCE_FILE = "reference.onnx"


def kept_float_nodes(record: dict[str, Any] | None) -> list[str] | None:
    """ONNX node names a quantize record's precision decision keeps in float (None: no decision)."""
    decision = (record or {}).get("kept_in_float")
    if not isinstance(decision, dict) or not isinstance(decision.get("kept_nodes"), list):
        return None
    return [str(n) for n in decision["kept_nodes"]]


#: the manifest's top-level table holding a measured backend choice (``edge_se.runtime.choice``)
RUNTIME_CHOICE = "runtime_choice"
