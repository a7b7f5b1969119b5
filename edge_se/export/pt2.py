"""torch.export (``model.pt2``) and AOTInductor (``model.aoti.pt2``) artifacts of the export stage.

torch.export captures the whole forward pass as an ``ExportedProgram`` with a dynamic batch
``1..max_batch`` (traced with a batch-2 example: a batch-1 example specialises the batch to 1).
AOTInductor compiles that program ahead of time into a package of native code (a shared library
for this CPU architecture and vector ISA) that Python or C++ (``examples/cpp/``) loads without the
model's code. Measured with torch 2.14.1: AOTInductor's lowering guards the batch at the
convolution backend choice (``s0 < 16`` at a batch-2 hint), so a package's batch range may come
out narrower than asked; the range baked into the package is read back from it and recorded, and
the runtime refuses batches outside it instead of running them unchecked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import traceback
from pathlib import Path
from typing import Any, Sequence

from edge_se.bundle import atomic_path
from edge_se.errors import ExportError, MissingDependencyError
from edge_se.runtime.backends.pt2_archive import package_info

#: the batch a torch.export trace uses when the batch is dynamic (1 would specialise it)
TRACE_BATCH = 2


def export_program(module, shape: Sequence[int], *, dynamic_batch: bool, max_batch: int):
    """``torch.export.export`` of ``module`` at ``shape`` (batch ``1..max_batch`` when dynamic).

    Raises ExportError with one line naming torch's reason and the user code it points at; the
    full text is on the exception's ``log`` attribute.
    """
    import torch

    if dynamic_batch:
        example = torch.randn((TRACE_BATCH, *shape[1:]), generator=torch.Generator().manual_seed(0))
        dims = ({0: torch.export.Dim("batch", min=1, max=max(int(max_batch), TRACE_BATCH))},)
    else:
        example, dims = torch.zeros(tuple(shape)), None
    try:
        with torch.no_grad(), quiet_torch_logs():
            return torch.export.export(module, (example,), dynamic_shapes=dims, strict=False)
    except Exception as e:  # torch.export raises many types: one line with the reason and the place
        err = ExportError(f"torch.export cannot capture {type(module).__name__}: {capture_reason(e)}")
        err.log = "".join(traceback.format_exception(e))
        raise err from None


@contextlib.contextmanager
def quiet_torch_logs():
    """torch's own log warnings off stderr (the failure, if any, is reported in one line)."""
    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch prints the failing graph to stderr
            yield
    finally:
        log.setLevel(level)


def capture_reason(e: BaseException) -> str:
    """torch's first message line plus the innermost user-code frame it names, on one line."""
    lines = [ln.rstrip() for ln in str(e).splitlines() if ln.strip()]
    first = lines[0].strip()[:300] if lines else type(e).__name__
    frames = [i for i, ln in enumerate(lines) if ln.lstrip().startswith('File "') and ", line " in ln]
    where = ""
    if frames:
        i = frames[-1]
        m = re.search(r'File "([^"]+)", line (\d+), in (\S+)', lines[i])
        code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].lstrip().startswith("File ") else ""
        if m:
            where = f" (at {Path(m.group(1)).name}:{m.group(2)} in {m.group(3)}{': ' + code[:120] if code else ''})"
    return f"{type(e).__name__}: {first}{where}"


def save_program(program, out: Path) -> None:
    """``torch.export.save`` to ``out``, atomically."""
    import torch

    with atomic_path(out) as tmp, open(tmp, "wb") as f:  # a file object: torch wants paths to end in .pt2
        torch.export.save(program, f)


def program_batch_range(program) -> tuple[int, int] | None:
    """(min, max) of the program's dynamic batch symbol, None for a static batch."""
    for value in program.range_constraints.values():
        upper = value.upper
        return int(value.lower), (int(upper) if upper != float("inf") and str(upper) != "int_oo" else None)
    return None


def compile_aoti(program, out: Path) -> dict[str, Any]:
    """AOTInductor package of ``program`` at ``out`` (``.pt2``); returns what the manifest records.

    MissingDependencyError (exit 3) when no C++ compiler is on PATH.
    """
    import torch

    from torch._inductor import config as inductor_config

    compilers = inductor_config.cpp.cxx if isinstance(inductor_config.cpp.cxx, (tuple, list)) else (inductor_config.cpp.cxx,)
    names = [c for c in compilers if c] or ["g++"]
    if not any(shutil.which(str(c)) for c in names):
        raise MissingDependencyError(
            f"AOTInductor compiles C++ but no C++ compiler is on PATH (looked for {', '.join(map(str, names))}); "
            "install one (Debian/Ubuntu: apt install g++) or leave aoti out of --formats"
        )
    if not str(out).endswith(".pt2"):
        raise ExportError(f"an AOTInductor package must end in .pt2, not {out.name}")
    try:
        # check_lowerbound off: the batch-2 trace makes AOTInductor demand batch >= 2 at run; the
        # runtime's own range check and the batch-1 validation keep batch 1 honest instead
        with quiet_torch_logs():  # e.g. "No CUDA runtime is found" on CPU hosts
            torch._inductor.aoti_compile_and_package(program, package_path=str(out),
                                                     inductor_configs={"aot_inductor.check_lowerbound": False})
    except MissingDependencyError:
        raise
    except Exception as e:  # inductor and the C++ compiler fail in many ways: one line, full log kept
        out.unlink(missing_ok=True)
        err = ExportError(f"AOTInductor compile failed: {capture_reason(e)}")
        err.log = "".join(traceback.format_exception(e))
        raise err from None
    return package_info(out)
