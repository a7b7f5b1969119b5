"""ONNX export with either of torch's exporters, saved as single-file ONNX when it fits.

Default exporter: the TorchScript-based ``torch.onnx.export(dynamo=False)``. Measured on the zoo
(tests/export): it exports every zoo model at opset 17 (the newest opset TensorRT 8.5/8.6 parse)
in about a tenth of the dynamo exporter's time. The dynamo exporter (``exporter="dynamo"``) is
torch's future default and works on the zoo as well, but emits opset >= 18, which TensorRT 8.x
(JetPack 5) cannot parse. The manifest records which exporter made each file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Iterator, Sequence

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
    ``tracer_warnings`` when given; other warnings are silenced. What the exporter prints (graph
    dumps, C++ warnings) is captured into ``info["log"]``, or the raised ExportError's ``log``.
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    if not 7 <= opset <= 23:
        raise InputError(f"--opset {opset} is outside the supported range 7..23 (TensorRT 8.5/8.6 parse up to 17)")
    out = Path(out)
    with collect_tracer_warnings(tracer_warnings), captured_output() as printed:
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
            failure = e
            trace = "".join(traceback.format_exception(e))
        else:
            failure = None
    if failure is not None:
        err = ExportError(f"ONNX export ({exporter} exporter, opset {opset}) failed: {error_reason(failure)}")
        err.log = f"== {exporter} exporter output ==\n{printed[0]}\n== {exporter} exporter error ==\n{trace}"
        raise err
    if not out.is_file():
        raise ExportError(f"the {exporter} exporter finished without writing {out.name}")
    return {"exporter": exporter, "requested_opset": opset, "torch": torch.__version__,
            "log": f"== {exporter} exporter output ==\n{printed[0]}" if printed[0].strip() else ""}


def export_onnx_with_fallback(module, example, out: Path, *, exporter: str = "torchscript", **kw) -> dict:
    """:func:`export_onnx`; when ``exporter`` fails, the other exporter is tried, and said so in one line.

    ``info["fallback"]`` then holds the exporter asked for and why it failed. When both fail the
    ExportError names both reasons and carries both logs.
    """
    from rich.markup import escape

    from edge_se import progress

    warnings = kw.get("tracer_warnings")
    mark = len(warnings) if warnings is not None else 0
    try:
        return export_onnx(module, example, out, exporter=exporter, **kw)
    except ExportError as e:
        if exporter not in EXPORTERS:
            raise
        first = e  # the other exporter runs outside this handler, so its errors do not chain to this one
    if warnings is not None:
        del warnings[mark:]  # the failed exporter's tracer warnings say nothing about the other's graph
    other = EXPORTERS[1 - EXPORTERS.index(exporter)]
    progress.info(f"[yellow]note[/yellow]: {escape(str(first))}; trying the {other} exporter")
    for p in out.parent.glob(out.name + "*"):
        p.unlink()
    try:
        info = export_onnx(module, example, out, exporter=other, **kw)
    except ExportError as second:
        err = ExportError(f"{first}; the {other} exporter failed too: {str(second).split('failed: ', 1)[-1]}")
        err.log = "\n".join(getattr(e, "log", "") or str(e) for e in (first, second))
        raise err from None
    info["fallback"] = {"requested": exporter, "reason": str(first)}
    info["log"] = "\n".join(x for x in (getattr(first, "log", "") or str(first), info["log"]) if x)
    return info


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Everything written to stdout/stderr inside (Python and native code alike) -> ``result[0]``.

    torch's exporters print graph dumps and C++ warnings straight to file descriptors 1 and 2, and
    Python-level text to ``sys.stdout``/``sys.stderr``; both go to the log instead of the terminal.
    edge-se's own progress console keeps writing where it wrote before.
    """
    from edge_se import progress

    result = [""]
    text = io.StringIO()
    py_err = sys.stderr
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = None
    try:
        terminal_is_fd2 = py_err.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        terminal_is_fd2 = False
    if terminal_is_fd2:
        terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    console_file = progress.console._file  # None: it follows sys.stderr (pytest and notebooks swap it)
    with tempfile.TemporaryFile() as tmp:
        try:
            for fd in saved:
                os.dup2(tmp.fileno(), fd)
            progress.console.file = terminal or py_err
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield result
        finally:
            for fd, old in saved.items():
                os.dup2(old, fd)
                os.close(old)
            progress.console._file = console_file
            if terminal is not None:
                terminal.close()
            tmp.seek(0)
            result[0] = text.getvalue() + tmp.read().decode("utf-8", "replace")


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


def error_reason(e: BaseException) -> str:
    """One line naming the op and the reason, from the innermost exception that names one (ANSI codes dropped)."""
    chain = [e]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 10:
        chain.append(nxt)
    for exc in reversed(chain):  # the innermost cause names the operator; the outer ones say "step 3/3"
        lines = [_ANSI.sub("", ln).strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        for ln in lines:
            if "aten::" in ln or "aten." in ln or "Unsupported" in ln or "not supported" in ln:
                return f"{type(exc).__name__}: {ln[:400]}"
    lines = [_ANSI.sub("", ln).strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:400] if lines else ''}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
