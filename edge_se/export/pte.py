"""ExecuTorch ``.pte`` export with the XNNPACK delegate (FP32, or INT8 through PT2E).

Needs the optional ``executorch`` package, which is built against one torch minor version
(ExecuTorch 1.5.x <-> torch 2.14.x; see ``edge_se/runtime/backends/executorch.py``).

Dynamic batch and memory planning (measured on executorch 1.5.1 + torch 2.14.1):

* ExecuTorch plans every non-delegated tensor at its upper bound, so the batch dimension must
  be bounded. Only the tensors outside the XNNPACK delegates (the program's input and output,
  and the few ops left to the portable kernels) are planned; XNNPACK sizes its own activations
  for the batch actually run. The planned arena grows linearly with the bound and is allocated
  when the method is loaded: se_resnet50 at 3x224x224 needs 1.00 MB a sample (64.2 MB at a bound
  of 64, about 4.1 GB at 4096); se_resnet18 at 3x64x64 needs 57 KB a sample (235 MB at 4096).
  Lowering time does not depend on the bound. 4096 therefore works but costs GBs of memory at
  224x224; 64 is the practical bound for a full-size image model (``batch_range`` and
  ``arena_bytes`` in the result say what was planned).
* XNNPACK's batch-norm fusion pass re-runs convolutions under fake tensors, and torch 2.14's
  fake convolution asks ``_select_conv_backend`` a question that guards on ``batch >= 16``
  (NNPACK's heuristic). With the usual batch-2 trace hint this refines the batch symbol to
  ``[2, 15]``, silently planning for at most 15 samples whatever bound the program was exported
  with. The planning here evaluates upper bounds with the program's own range instead
  (``_bounded_shape_eval``), so the bound asked for is the bound planned.
"""

from __future__ import annotations

import operator
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from edge_se.bundle import atomic_path
from edge_se.errors import EdgeSEError, ExportError


def export_pte(exported_program, out: Path, *, max_batch: int,
               calibration: Iterable[np.ndarray] | None = None) -> dict:
    """Lower ``exported_program`` to an XNNPACK-delegated ``.pte`` at ``out`` (written atomically).

    ``max_batch`` bounds the dynamic batch (clamped to the program's own bound; a static batch
    stays static). With ``calibration`` (float32 NCHW batches, each within the batch range) the
    model is quantized to INT8 first (PT2E, XNNPACK quantizer: symmetric per-channel weights,
    histogram-observed activations). Returns a summary dict.
    Raises MissingDependencyError when ExecuTorch is missing or built for another torch, and
    ExportError (one line naming the stage) on any failure.
    """
    from edge_se.runtime.backends.executorch import require_executorch

    et_version, _ = require_executorch("ExecuTorch .pte export")
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise ExportError(f"max_batch must be a positive integer, got {max_batch!r}")
    out = Path(out)
    t0 = time.perf_counter()
    example, batch_sym, batch_range = _batch_info(exported_program, max_batch)
    precision = "fp32"
    ep = exported_program
    if calibration is not None:
        precision = "int8"
        ep = _quantize(ep, example, batch_range, calibration)
        _, batch_sym, batch_range = _batch_info(ep, max_batch)  # the re-export has its own symbol
    try:
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    except Exception as e:  # lowering raises many types
        raise ExportError(f"ExecuTorch lower failed: {_reason(e)}") from None
    delegated, total = _delegation(edge.exported_program())
    try:
        config = ExecutorchBackendConfig(sym_shape_eval_pass=_bounded_shape_eval(batch_sym, batch_range))
        program = edge.to_executorch(config)
        data = program.buffer
        arena = int(sum(program.executorch_program.execution_plan[0].non_const_buffer_sizes))
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
    except EdgeSEError:
        raise
    except Exception as e:
        raise ExportError(f"ExecuTorch serialize failed: {_reason(e)}") from None
    return {
        "exporter": f"executorch {et_version}",
        "torch": torch.__version__,
        "delegate": "xnnpack",
        "precision": precision,
        "batch_range": list(batch_range),
        "delegated_fraction": round(delegated / total, 4) if total else 0.0,
        "ops_outside_delegate": total - delegated,
        "arena_bytes": arena,
        "bytes": len(data),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _batch_info(ep, max_batch: int):
    """(batch-2 example input, batch symbol or None, (min, max) batch planned)."""
    import torch

    inputs = [s for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    if len(inputs) != 1:
        raise ExportError(f"ExecuTorch export expects one tensor input, the program has {len(inputs)}")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == inputs[0].arg.name)
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or val.dim() == 0:
        raise ExportError("ExecuTorch export expects a batched tensor input (N, ...)")
    rest = [int(d) for d in val.shape[1:]]
    dim0 = val.shape[0]
    if isinstance(dim0, int):
        return torch.randn(dim0, *rest), None, (dim0, dim0)
    sym = dim0.node.expr
    vr = ep.range_constraints.get(sym)
    lo = int(vr.lower) if vr is not None else 1
    hi = max_batch
    if vr is not None and vr.upper.is_finite:
        hi = min(hi, int(vr.upper))
    return torch.randn(max(2, lo), *rest), sym, (max(1, lo), hi)


def _quantize(ep, example, batch_range, calibration):
    """PT2E INT8: XNNPACK quantizer, observe the calibration batches, convert, re-export."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    seen = 0
    try:
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        module = ep.module()
        unshare_weights(module)
        prepared = prepare_pt2e(module, quantizer)
        with torch.no_grad():
            for batch in calibration:
                prepared(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
                seen += len(batch)
        if not seen:
            raise ExportError("ExecuTorch quantize failed: the calibration set is empty")
        converted = convert_pt2e(prepared)
        lo, hi = batch_range
        dynamic = None if lo == hi else ({0: torch.export.Dim("batch", min=lo, max=hi)},)
        return torch.export.export(converted, (example,), dynamic_shapes=dynamic)
    except EdgeSEError:
        raise
    except Exception as e:
        raise ExportError(f"ExecuTorch quantize failed: {_reason(e)}") from None


def unshare_weights(gm) -> int:
    """Give every convolution or linear call its own copy of a weight or bias it shares with
    another call (CBAM's channel MLP runs twice with one set of weights). ExecuTorch 1.5.1's
    XNNPACK cannot compile an INT8 program whose quantized weight feeds two convolutions: the
    method fails to load (``XNNCompiler::compileModel failed: 0x1``); FP32 is unaffected.
    Returns the number of copies made; ``gm`` (an ``ExportedProgram.module()``) is changed in place."""
    import torch

    weighted = {torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default,
                torch.ops.aten.linear.default}
    copies = 0
    for node in list(gm.graph.nodes):
        if node.op != "get_attr":
            continue
        users = [u for u in node.users if u.op == "call_function" and u.target in weighted]
        for i, user in enumerate(users[1:], 1):
            value = operator.attrgetter(node.target)(gm)  # a parameter or a buffer
            name = f"{node.target.replace('.', '_')}_unshared{i}"
            gm.register_buffer(name, value.detach().clone())
            with gm.graph.inserting_before(user):
                copy = gm.graph.get_attr(name)
            copy.meta = dict(node.meta)  # the quantizer reads the shape ("val") from here
            user.replace_input_with(node, copy)
            copies += 1
    if copies:
        gm.graph.lint()
        gm.recompile()
    return copies


def _delegation(program) -> tuple[int, int]:
    """(ops inside XNNPACK delegates, all compute ops) of a lowered edge program."""
    inside = outside = 0
    modules = dict(program.graph_module.named_children())
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" in name:
            lowered = modules.get(node.args[0].target)
            if lowered is not None:
                inside += sum(1 for n in lowered.original_module.graph.nodes
                              if n.op == "call_function" and "getitem" not in str(n.target))
        elif "getitem" not in name:
            outside += 1
    return inside, inside + outside


def _bounded_shape_eval(batch_sym, batch_range):
    """ExecuTorch shape-evaluation pass planning the batch at ``batch_range`` (imports lazily)."""
    import sympy
    import torch.utils._pytree as pytree
    from executorch.exir.pass_base import PassBase, PassResult
    from executorch.exir.tensor import TensorSpec
    from torch.fx import GraphModule
    from torch.utils._sympy.value_ranges import ValueRanges, bound_sympy

    class BoundedShapeEval(PassBase):
        """ExecuTorch's constraint-based shape evaluation, with the batch range pinned.

        The shape environment's ranges are used for every symbol except the batch, whose
        range is the one the program was exported with (see the module docstring).
        """

        def __init__(self, batch_sym, batch_range):
            super().__init__()
            self.batch_sym = batch_sym
            self.batch_range = batch_range

        def _upper(self, value) -> int:
            if isinstance(value, int):
                return value
            node = value.node
            ranges = dict(node.shape_env.var_to_range)
            if self.batch_sym is not None:
                ranges[self.batch_sym] = ValueRanges(*self.batch_range)
            upper = bound_sympy(node.expr, ranges).upper
            if not isinstance(upper, sympy.Integer):
                raise ExportError(f"ExecuTorch serialize failed: no finite upper bound for {node.expr}")
            return int(upper)

        def call(self, graph_module: GraphModule) -> PassResult:
            for sub in graph_module.modules():
                if not isinstance(sub, GraphModule):
                    continue
                for node in sub.graph.nodes:
                    for spec in pytree.tree_flatten(node.meta.get("spec", []))[0]:
                        if isinstance(spec, TensorSpec):
                            spec.shape = [self._upper(s) for s in spec.shape]
                            spec.stride = [self._upper(s) for s in spec.stride]
            return PassResult(graph_module, True)

    return BoundedShapeEval(batch_sym, batch_range)


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0].strip() if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
