"""ONNX export with either of torch's exporters, saved as single-file ONNX when it fits.

Default exporter: the TorchScript-based ``torch.onnx.export(dynamo=False)``. Measured on the zoo
(tests/export): it exports every zoo model at opset 17 (the newest opset TensorRT 8.5/8.6 parse)
in about a tenth of the dynamo exporter's time. The dynamo exporter (``exporter="dynamo"``) is
torch's future default and works on the zoo as well, but emits opset >= 18, which TensorRT 8.x
(JetPack 5) cannot parse. The manifest records which exporter made each file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edge_se.errors import ExportError, InputError
from edge_se.export.tracer import collect_tracer_warnings

DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")
TWO_GB = 2**31 - 1


def output_names_for(n_outputs: int) -> list[str]:
    """``logits`` for one output, ``output0..`` for several."""
    return ["logits"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)]


def export_onnx(
    module,
    example,
    out: Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("logits",),
    tracer_warnings: list[dict] | None = None,
) -> dict:
    """Export ``module`` at ``example`` to ``out`` (a path in a staging folder). Returns info.

    Tracer warnings of the TorchScript-based exporter (edge_se/export/tracer.py) are appended to
    ``tracer_warnings`` when given; other warnings are silenced.
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    if not 7 <= opset <= 23:
        raise InputError(f"--opset {opset} is outside the supported range 7..23 (TensorRT 8.5/8.6 parse up to 17)")
    out = Path(out)
    with collect_tracer_warnings(tracer_warnings):
        try:
            if exporter == "torchscript":
                axes = {n: {0: "batch"} for n in [*input_names, *output_names]} if dynamic_batch else None
                torch.onnx.export(
                    module,
                    (example,),
                    str(out),
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
            else:
                shapes = None
                if dynamic_batch:
                    arg = _first_arg_name(module)
                    shapes = {arg: {0: torch.export.Dim("batch", min=1, max=4096)}}
                torch.onnx.export(
                    module,
                    (example,),
                    str(out),
                    dynamo=True,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_shapes=shapes,
                    external_data=True,
                )
        except Exception as e:  # exporter errors come in many types: name the op and the reason
            raise ExportError(f"ONNX export ({exporter} exporter, opset {opset}) failed: {_reason(e)}") from None
    if not out.is_file():
        raise ExportError(f"the {exporter} exporter finished without writing {out.name}")
    return {"exporter": exporter, "requested_opset": opset, "torch": torch.__version__}


def save_model(model, out: Path) -> list[str]:
    """Save an ``onnx.ModelProto`` to ``out``: one file when < 2 GB, else with ``<name>.data``.

    Returns the extra file names (relative to ``out``'s folder) holding external data.
    """
    import onnx

    size = model.ByteSize()
    if size < TWO_GB:
        onnx.save_model(model, str(out))
        return []
    data = out.name + ".data"
    onnx.save_model(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True, location=data)
    return [data]


def _first_arg_name(module) -> str:
    import inspect

    params = [p for p in inspect.signature(module.forward).parameters.values() if p.name != "self"]
    return params[0].name if params else "x"


def _reason(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    # keep the line naming an unsupported operator when torch buries it
    for ln in lines:
        if "aten::" in ln or "Unsupported" in ln or "not supported" in ln:
            return f"{type(e).__name__}: {ln[:400]}"
    return f"{type(e).__name__}: {lines[0][:400] if lines else ''}"
