"""Result output shared by the sub-commands: with ``--json`` exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(document: Any) -> None:
    """Print ``document`` as the command's one JSON document on stdout (paths and odd types as strings)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def deprecated(old: str, new: str) -> None:
    """The one note line a hidden, deprecated option spelling prints (a warning: shown with -q too)."""
    from edge_se.progress import logger

    text = f"{old} is deprecated; use {new}"
    logger.warning(text, extra={"markup": f"[yellow]note[/yellow]: {text}"})
