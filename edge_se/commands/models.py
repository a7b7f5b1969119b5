"""``edge-se models``: list the model zoo (name, family, attention, default input shape, parameters).

``--json`` adds each model's description and class count."""

from __future__ import annotations

import argparse
import json

NAME = "models"
ORDER = 5
HELP = "list the model zoo (attention type, default input shape, parameters)"
DESCRIPTION = (
    "List the zoo models that `edge-se export` accepts by name. Other models: torchvision:NAME, "
    "timm:NAME (needs edge-se[timm]) or path/to/file.py:factory."
)
EXAMPLES = """  edge-se models
  edge-se models 'se_*'
  edge-se models digits --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default=None,
                   help="shell wildcard ('se_*') or substring ('digits') to filter names")


def zoo_rows(pattern: str | None = None) -> list[dict]:
    """One dict per matching zoo model: ModelInfo fields plus ``params`` (count), from the static
    catalog (no torch import, no model built)."""
    from edge_se.models.catalog import rows

    return rows(pattern)


def run(args: argparse.Namespace) -> int:
    rows = zoo_rows(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"no zoo model matches '{args.pattern}'; run `edge-se models` to list all")
        return 0
    table = Table(title=f"edge-se model zoo ({len(rows)} models)")
    for col in ("name", "family", "attention", "input", "params (M)"):
        table.add_column(col, justify="right" if col.startswith("params") else "left", no_wrap=True)
    for r in rows:
        shape = "x".join(map(str, r["default_input_shape"])) if r["default_input_shape"] else "-"
        table.add_row(r["name"], r["family"] or "-", r["attention_type"] or "-", shape, f"{r['params'] / 1e6:.2f}")
    console.print(table)
    return 0
