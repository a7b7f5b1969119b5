"""Checks on exported graphs and on the PyTorch model before export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edge_se.errors import ExportError, InputError

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64", 16: "bfloat16"}


def check_onnx_file(path: Path) -> dict[str, Any]:
    """onnx.checker (full) + strict shape inference on a saved model (external data allowed)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(f"ONNX checker rejected {path.name}: {str(e).strip().splitlines()[0][:300]}") from None
    model = onnx.load(str(path), load_external_data=False)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise ExportError(f"ONNX shape inference failed on {path.name}: {str(e).strip().splitlines()[0][:300]}") from None
    return {"name": "onnx-checker", "passed": True, "value_infos": len(inferred.graph.value_info)}


def io_specs(model) -> tuple[list[dict], list[dict]]:
    """Input and output specs of an ONNX graph: name, shape (int or dim name), dtype."""
    inits = {i.name for i in model.graph.initializer}

    def spec(v) -> dict:
        t = v.type.tensor_type
        dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
        return {"name": v.name, "shape": dims, "dtype": _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))}

    return [spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output]


#: the largest dimension and element count accepted for an input tensor (2**31 float32 = 8 GiB)
MAX_DIM = 2**20
MAX_ELEMENTS = 2**31
SHAPE_HINT = "NxCxHxW, e.g. 1x3x224x224 (a leading -1, written --input-shape=-1x3x224x224, means dynamic batch)"


def parse_input_shape(text: str) -> tuple[int, int, int, int]:
    """``1x3x224x224`` -> (1, 3, 224, 224); a clear error for anything else.

    A batch of ``-1`` (``-1x3x224x224``) means a dynamic batch and is traced at batch 1; see
    :func:`dynamic_batch_requested`. Shapes whose tensor would be absurdly large are refused
    (:func:`check_shape_size`) before anything is allocated.
    """
    parts = [p.strip() for p in text.lower().replace("*", "x").replace(",", "x").split("x")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"--input-shape {text!r} is malformed; expected {SHAPE_HINT}") from None
    if len(dims) != 4:
        raise InputError(f"--input-shape {text!r} has {len(dims)} dims; expected 4: {SHAPE_HINT}")
    if dims[0] == -1:
        dims = (1, *dims[1:])
    if any(d == -1 for d in dims[1:]):
        raise InputError(f"--input-shape {text!r}: only the batch dim may be -1 (dynamic); give C, H and W as numbers")
    if any(d <= 0 for d in dims):
        raise InputError(f"--input-shape {text!r} has a non-positive dim; every dim must be >= 1 (or -1 for the batch)")
    check_shape_size(dims, f"--input-shape {text!r}")
    if dims[1] not in (1, 3):
        raise InputError(f"--input-shape {text!r}: image models take 1 or 3 channels, got {dims[1]}")
    return dims  # type: ignore[return-value]


def dynamic_batch_requested(text: str) -> bool:
    """True when an ``--input-shape`` text starts with a ``-1`` batch."""
    return text.lower().replace("*", "x").replace(",", "x").split("x")[0].strip() == "-1"


def check_shape_size(shape: Sequence[int], what: str = "the input shape") -> None:
    """Refuse a shape with a dimension > MAX_DIM or more than MAX_ELEMENTS elements (InputError)."""
    dims = [int(d) for d in shape]
    big = [d for d in dims if d > MAX_DIM]
    if big:
        raise InputError(
            f"{what} has a dimension of {big[0]}, more than the {MAX_DIM} edge-se accepts; "
            "give the real input size, e.g. 1x3x224x224"
        )
    n = 1
    for d in dims:
        n *= max(d, 1)
    if n > MAX_ELEMENTS:
        raise InputError(
            f"{what} is a tensor of {n} elements ({n * 4 / 2**30:.0f} GiB as float32), more than "
            f"the {MAX_ELEMENTS} (8 GiB) edge-se accepts; give the real input size, e.g. 1x3x224x224"
        )


def _run_naming_module(module, x) -> Any:
    """Run ``module(x)``; on failure raise ExportError naming the innermost module that failed."""
    import torch

    stack: list[str] = []
    failed: list[str] = []
    names = {m: n for n, m in module.named_modules()}
    handles = []

    def pre(m, _inp):
        stack.append(names.get(m, type(m).__name__))

    def post(m, _inp, _out):
        if stack:
            stack.pop()

    for m in names:
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad():
            return module(x)
    except Exception as e:
        failed[:] = stack[-1:] or [""]
        culprit = failed[0]
        sub = dict(module.named_modules()).get(culprit) if culprit else None
        what = f"module '{culprit}' ({_short_repr(sub)})" if culprit else "the model's top-level forward"
        raise _ResolutionFailure(what, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}") from None
    finally:
        for h in handles:
            h.remove()


class _ResolutionFailure(Exception):
    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def _short_repr(m) -> str:
    text = repr(m).splitlines()[0] if m is not None else ""
    return text if len(text) < 120 else text[:117] + "..."


def probe_model(module, shape: Sequence[int]) -> dict[str, Any]:
    """Run the model at ``shape`` and at a second resolution; name the module that fixes it.

    Raises ExportError when the model fails at the requested shape (naming the module). Returns
    ``{"resolution": "any" | "fixed", "fixed_by": str | None, "outputs": n}``.
    """
    import torch

    x = torch.zeros(tuple(shape))
    fixed_pools = _fixed_window_pools(module, x)
    try:
        out = _run_naming_module(module, x)
    except _ResolutionFailure as f:
        raise ExportError(
            f"the model fails at input shape {'x'.join(map(str, shape))}: {f.where} raised {f.reason}. "
            "If the model only works at the resolution it was built for, pass that --input-shape"
        ) from None
    n_out = 1 if isinstance(out, torch.Tensor) else len(out) if isinstance(out, (list, tuple)) else 1
    n, c, h, w = shape
    # a second resolution far enough away that a fixed pooling window changes the output size
    dh, dw = max(32, min(h, 256)), max(32, min(w, 256))
    alt = (n, c, h + dh, w + dw)
    try:
        out2 = _run_naming_module(module, torch.zeros(alt))
    except _ResolutionFailure as f:
        cause = f"{f.where} fails at {h + dh}x{w + dw}: {f.reason}"
        if fixed_pools:
            cause = f"{'; '.join(fixed_pools)}; then {cause}"
        return {"resolution": "fixed", "fixed_by": cause, "outputs": n_out}
    same = _shapes(out) == _shapes(out2)
    return {
        "resolution": "any" if same else "fixed",
        "fixed_by": None if same else f"output shape changes with resolution ({_shapes(out)} -> {_shapes(out2)})",
        "outputs": n_out,
    }


def _fixed_window_pools(module, x) -> list[str]:
    """Fixed-window pools that reduce the map to 1x1 only at this input size (AvgPool2d(7) style)."""
    import torch
    from torch import nn

    found: list[str] = []
    handles = []
    for name, m in module.named_modules():
        if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)):
            def hook(mod, inp, out, name=name):
                if out.dim() == 4 and out.shape[-2:] == (1, 1) and tuple(inp[0].shape[-2:]) != (1, 1):
                    found.append(f"module '{name}' ({_short_repr(mod)}) pools a {tuple(inp[0].shape[-2:])} map to 1x1 "
                                 "only at this input size (use AdaptiveAvgPool2d(1) to make it resolution-agnostic)")
            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(x)
    except Exception:  # the caller runs the model again and reports the failure properly
        pass
    finally:
        for h in handles:
            h.remove()
    return found


def _shapes(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [tuple(out.shape[1:])]
    return [tuple(o.shape[1:]) for o in out]


def fp32_onnx_numerics(bundle, ref_fn, images, seed: int) -> tuple[list[dict[str, Any]], Any, Any, Any]:
    """Numerics of the bundle's ``model.onnx`` (ONNX Runtime) against ``ref_fn`` on real images,
    noise and scaled noise (x0.1, x10, negated: a branch on the input's sign or scale the trace may
    have frozen). Returns the checks and the reference outputs, inputs and their descriptions, for
    the bundle's other FP32 files to be checked on the same data."""
    from edge_se.reference.check import check_numerics, ort_runner, reference_outputs, validation_inputs

    model = bundle.model()
    inputs, desc = validation_inputs(bundle.preprocessing(), list(model.input_shape), images=images, seed=seed,
                                     scaled=True)
    ref = reference_outputs(ref_fn, inputs)
    names = [t.name for t in bundle.record("model.onnx").outputs or ()]
    checks = check_numerics("model.onnx", ort_runner(bundle.verify("model.onnx")), ref, inputs, desc, "fp32",
                            model.dynamic_batch, names, static_batch=model.input_shape[0])
    return checks, ref, inputs, desc
