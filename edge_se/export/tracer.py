"""Tracer warnings: the sign that a trace recorded one path of data-dependent Python code.

``torch.jit.trace`` and the TorchScript-based ONNX exporter run ``forward`` once and record the
tensor ops it executed. Python control flow on tensor *values* (``if x.mean() > 0:``,
``x.item()``, ``float(t)``, iterating a tensor) is evaluated once, at the example input, and
frozen into the graph: the artifact is wrong on inputs that would take the other branch, yet
matches PyTorch on inputs that take the traced one. torch reports each such spot with a
``torch.jit.TracerWarning`` naming the file and line; export treats one as a failed check.

Which warnings count: those raised from code outside torch's own package (the user's model,
torchvision, timm, ...). torch itself ignores the TracerWarnings of its library code
(``TracerWarning.ignore_lib_warnings()``: "all our shape checks in nn will trigger them") with
the module filter ``torch.(?!jit)``; that regex misses the top-level ``torch`` module, where
``torch._assert`` (the traceable shape assertion used by e.g. torchvision's ViT) lives, and it
wrongly matches user modules named ``torch...``. So the rule here is by file instead: a warning
whose file lies in torch's package, outside ``torch/jit``, is torch's own shape check and is
not counted; every other TracerWarning is.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator

from edge_se.errors import ExportError

ALLOW_HINT = "pass --allow-tracer-warnings to export anyway (recorded in the manifest)"


def _torch_dirs() -> tuple[str, str]:
    import torch

    root = os.path.dirname(os.path.realpath(torch.__file__))
    return root + os.sep, os.path.join(root, "jit") + os.sep


def from_torch_library(filename: str) -> bool:
    """True for a file of torch's own package other than ``torch/jit`` (torch's shape checks)."""
    root, jit = _torch_dirs()
    try:
        path = os.path.realpath(filename)
    except (OSError, ValueError):
        return False
    return path.startswith(root) and not path.startswith(jit)


@contextlib.contextmanager
def collect_tracer_warnings(found: list[dict] | None) -> Iterator[None]:
    """Silence other warnings (torch.jit / legacy-exporter deprecation notices) and record tracer warnings.

    Each counted TracerWarning is appended to ``found`` (when not None) once, as
    ``{"file", "line", "message"}``; see the module docstring for which are counted.
    """
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        # "always" ahead of torch's own module filter: which ones count is decided below, by file
        warnings.filterwarnings("always", category=torch.jit.TracerWarning)
        try:
            yield
        finally:
            if found is not None:
                seen = {(w["file"], w["line"], w["message"]) for w in found}
                for w in caught:
                    if not issubclass(w.category, torch.jit.TracerWarning) or from_torch_library(w.filename):
                        continue
                    rec = {"file": str(w.filename), "line": int(w.lineno or 0), "message": _one_line(w.message)}
                    key = (rec["file"], rec["line"], rec["message"])
                    if key not in seen:
                        seen.add(key)
                        found.append(rec)


def tracer_warning_error(found: list[dict], where: str) -> ExportError:
    """The one-line error for tracer warnings raised while ``where`` (e.g. 'TorchScript tracing')."""
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return ExportError(
        f"{where} warned at {first['file']}:{first['line']}: {_first_sentence(first['message'])}{more} "
        "(a value or branch frozen at the example input: the export may be wrong on other inputs); "
        f"make forward() free of Python control flow on tensor values, or {ALLOW_HINT}"
    )


def describe(rec: dict) -> str:
    """``file:line: message`` of one recorded warning."""
    return f"{rec['file']}:{rec['line']}: {rec['message']}"


def _first_sentence(text: str) -> str:
    head = text.partition(". ")[0]
    return head.rstrip(".")


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = ["ALLOW_HINT", "collect_tracer_warnings", "describe", "from_torch_library", "tracer_warning_error"]
