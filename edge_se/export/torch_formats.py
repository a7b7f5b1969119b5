"""The export stage's torch.export artifacts: ``model.pt2``, and from it ``model.aoti.pt2`` and
``model.pte`` when asked (edge_se/export/formats.py says which must succeed).

A format that fails and was not required is left out of the bundle with one note line; its
full log goes to the bundle's ``logs/`` and the manifest's ``format_failures``. A required one
fails the export, its log written beside the output folder (``<out>.export-failure.log``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from edge_se import progress
from edge_se.bundle import Bundle, atomic_write_text
from edge_se.errors import ExportError
from edge_se.export.formats import FILES, FormatPlan
from edge_se.manifest import AOTI_PACKAGE, EXECUTORCH, TORCH_EXPORT
from edge_se.reference.check import check_numerics, torch_format_runner

TORCH_FORMATS = (TORCH_EXPORT, AOTI_PACKAGE, EXECUTORCH)
LOGS = "logs"


def failure_log_path(out: str | Path) -> Path:
    """Where a required format's failure log goes: beside the (unpublished) bundle folder."""
    out = Path(out)
    return out.with_name(out.name + ".export-failure.log")


def torch_export_artifacts(bundle: Bundle, module, plan: FormatPlan, shape: Sequence[int], dynamic_batch: bool,
                           max_batch: int, io: dict[str, Any], timed: Callable, out: str | Path) -> None:
    """Write and record the torch.export artifacts ``plan`` asks for into ``bundle`` (a staging folder)."""
    import torch

    from edge_se.export.pt2 import compile_aoti, export_program, program_batch_range, save_program

    failure_log_path(out).unlink(missing_ok=True)
    if "pt2" not in plan:
        return
    try:
        with timed("torch_export", "Exporting with torch.export"):
            program = export_program(module, shape, dynamic_batch=dynamic_batch, max_batch=max_batch)
            save_program(program, bundle.root / FILES["pt2"])
    except ExportError as e:
        _failed(bundle, "pt2", e, plan, out)
        return
    batch = program_batch_range(program)
    batch_range = [batch[0], batch[1]] if batch else [int(shape[0]), int(shape[0])]
    meta = {"stage": "export", "precision": "fp32", "policy": None, "torch": torch.__version__, **io}
    bundle.add_artifact(FILES["pt2"], format=TORCH_EXPORT, backend="pt2", exporter="torch.export.export",
                        batch_range=batch_range, **meta)
    if "aoti" in plan:
        try:
            with timed("aoti", "Compiling with AOTInductor (a C++ build: about a minute or more)"):
                info = compile_aoti(program, bundle.root / FILES["aoti"])
            baked = info.pop("baked_batch_max", None)
            info.pop("baked_batch_min", None)
            aoti_range = [batch_range[0], min(batch_range[1], baked) if baked else batch_range[1]]
            if aoti_range[1] < batch_range[1]:
                progress.info(f"[yellow]note[/yellow]: AOTInductor narrowed the batch range to {aoti_range[0]}..{aoti_range[1]} "
                              f"(asked {batch_range[0]}..{batch_range[1]}): torch's lowering guards the batch; larger batches "
                              "are split by the runtime")
            bundle.add_artifact(FILES["aoti"], format=AOTI_PACKAGE, backend="aoti", exporter="torch._inductor.aoti_compile_and_package",
                                batch_range=aoti_range, requested_batch_range=batch_range, **info, **meta)
        except ExportError as e:
            _failed(bundle, "aoti", e, plan, out)
    if "pte" in plan:
        try:
            from edge_se.export.pte import export_pte

            with timed("pte", "Lowering to ExecuTorch with the XNNPACK delegate (minutes)"):
                info = export_pte(program, bundle.root / FILES["pte"], max_batch=batch_range[1])
            info = dict(info)
            pte_range = info.pop("batch_range", batch_range)
            info.pop("precision", None)
            bundle.add_artifact(FILES["pte"], format=EXECUTORCH, backend="executorch", batch_range=list(pte_range),
                                **{k: v for k, v in info.items() if k not in meta}, **meta)
        except ExportError as e:
            _failed(bundle, "pte", e, plan, out)


def _failed(bundle: Bundle, fmt: str, error: ExportError, plan: FormatPlan, out: str | Path) -> None:
    log = getattr(error, "log", None) or str(error)
    if fmt in plan.required:
        path = failure_log_path(out)
        atomic_write_text(path, log)
        raise ExportError(f"{error} (full log: {path}; --formats asked for {fmt})") from None
    rel = f"{LOGS}/{fmt}-export.log"
    atomic_write_text(bundle.root / rel, log)
    bundle.manifest.setdefault("format_failures", {})[fmt] = {"reason": str(error), "log": bundle.file_entry(rel)}
    progress.info(f"[yellow]note[/yellow]: no {FILES[fmt]} in this bundle: {error} (full log: {rel})")


def validate_torch_formats(bundle: Bundle, ref, inputs, desc) -> list[dict[str, Any]]:
    """Numerics of every torch.export artifact in ``bundle``, each on the runtime backend that runs it."""
    model = bundle.section("model")
    dynamic = model["dynamic_batch"]
    checks: list[dict[str, Any]] = []
    for name, rec in list(bundle.artifacts.items()):
        if rec.get("format") not in TORCH_FORMATS:
            continue
        fn, backend = torch_format_runner(bundle.verify(name), name, rec)
        names = [o["name"] for o in rec.get("outputs", [])] or None
        checks += check_numerics(name, fn, ref, inputs, desc, rec["precision"], dynamic, names, backend=backend,
                                 static_batch=model["input_shape"][0])
    return checks
