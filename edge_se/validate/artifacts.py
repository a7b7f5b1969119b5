"""Validate every artifact of an existing bundle (``edge-se validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_se.bundle import Bundle
from edge_se.manifest import AOTI_PACKAGE, EXECUTORCH, ONNX, TORCH_EXPORT, TORCHSCRIPT
from edge_se.reference.check import (check_numerics, load_torchscript, ort_runner, reference_outputs, torch_format_runner,
                                    torch_runner, validation_inputs)
from edge_se.reference.rebuild import ReferenceOptions, reference_runner


def validate_bundle(
    bundle: Bundle, images: str | Path | None = None, reference: ReferenceOptions | None = None
) -> list[dict[str, Any]]:
    """sha256 of every artifact, then numerics of each ONNX / TorchScript / torch.export artifact vs the reference
    (PyTorch; ONNX Runtime FP32 on the imported file for a bundle made from ONNX)."""

    for name in bundle.artifacts:
        bundle.verify(name)
    model = bundle.model()
    spec = bundle.preprocessing()
    ref_fn, ref_desc = reference_runner(bundle, reference)
    inputs, desc = validation_inputs(spec, model.input_shape, images=images, seed=model.seed)
    ref = reference_outputs(ref_fn, inputs)
    checks: list[dict[str, Any]] = []
    for name in bundle.artifacts:
        rec = bundle.record(name)
        names = [o["name"] for o in rec.raw.get("outputs", [])] or None
        if rec.format == ONNX:
            fn, backend = ort_runner(bundle.path(name)), "onnxruntime-cpu"
        elif rec.format == TORCHSCRIPT:
            fn, backend = torch_runner(load_torchscript(bundle.path(name))), "torchscript"
        elif rec.format in (TORCH_EXPORT, AOTI_PACKAGE, EXECUTORCH):
            fn, backend = torch_format_runner(bundle.path(name), name, rec.raw)
        else:
            continue  # engines are validated on their device (edge-se build)
        checks += check_numerics(name, fn, ref, inputs, desc, rec.precision, model.dynamic_batch, names, backend,
                                 static_batch=model.input_shape[0])
    for c in checks:
        c["reference"] = ref_desc
        bundle.record_check(c)
    return checks
