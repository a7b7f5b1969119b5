"""Which artifacts ``edge-se export`` writes, and which of them must succeed (``--formats``).

Without ``--formats`` a bundle holds ``model.onnx``, ``model.ts`` and ``model.pt2``; a model that
torch.export cannot capture still gets its bundle (the failure is noted in one line, the full log
kept in the bundle's ``logs/``). Naming formats makes each named one required: its failure fails
the export. ``onnx`` is always written: every later stage (quantize, build, the runtime) starts
from it. ``aoti`` and ``pte`` are compiled from the torch.export program, so they imply ``pt2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from edge_se.errors import InputError

#: format name -> file name in the bundle
FILES = {"onnx": "model.onnx", "ts": "model.ts", "pt2": "model.pt2", "aoti": "model.aoti.pt2", "pte": "model.pte"}
FORMATS = tuple(FILES)
DEFAULT = ("onnx", "ts", "pt2")
#: the torch.export artifacts' batch range is 1..max_batch (ONNX keeps an unbounded batch)
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class FormatPlan:
    """The formats to write and the ones whose failure fails the export."""

    wanted: tuple[str, ...]
    required: frozenset[str]

    def __contains__(self, name: str) -> bool:
        return name in self.wanted


def plan_formats(formats: str | Sequence[str] | None) -> FormatPlan:
    """``None``: the default set (``pt2`` best effort); else the named formats, all required."""
    if formats is None:
        return FormatPlan(DEFAULT, frozenset({"onnx", "ts"}))
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in FILES]
    if unknown or not names:
        raise InputError(f"--formats {','.join(names) or repr(formats)}: unknown format "
                         f"{', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}")
    wanted = set(names) | {"onnx"}
    if wanted & {"aoti", "pte"}:
        wanted.add("pt2")
    return FormatPlan(tuple(f for f in FORMATS if f in wanted), frozenset(wanted))
