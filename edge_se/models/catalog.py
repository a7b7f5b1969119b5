"""The zoo as static metadata: what ``edge-se models`` lists without importing torch.

``zoo.json`` (package data next to this module) holds one row per zoo model: the registry's
:class:`~edge_se.models.registry.ModelInfo` fields and the parameter count. It is generated from
the live registry (``python -m edge_se.models.catalog``), and a test compares it with the registry
row by row, so it cannot drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_se.models.registry import matching

CATALOG = "zoo.json"


def rows(pattern: str | None = None) -> list[dict[str, Any]]:
    """One dict per matching zoo model (name, family, attention_type, default_input_shape,
    num_classes, description, params), in natural name order, read from ``zoo.json``."""
    data = json.loads((Path(__file__).resolve().parent / CATALOG).read_text(encoding="utf-8"))
    by_name = {r["name"]: r for r in data}
    return [by_name[n] for n in matching(by_name, pattern)]


def live_rows() -> list[dict[str, Any]]:
    """The same rows from the registry itself (imports the zoo and torch; builds on the meta device)."""
    from edge_se.models.registry import count_params, list_models, model_info

    return [{**model_info(n).to_dict(), "params": count_params(n)} for n in list_models()]


def write(path: str | Path | None = None) -> Path:
    """Regenerate ``zoo.json`` from the registry."""
    out = Path(path) if path else Path(__file__).with_name(CATALOG)
    out.write_text(json.dumps(live_rows(), indent=1) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    print(write())


__all__ = ["CATALOG", "live_rows", "rows", "write"]
