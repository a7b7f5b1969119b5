"""Which ONNX operators TensorRT's ONNX parser supports, per TensorRT version.

The table (``data/trt_onnx_ops.json``) is NVIDIA's onnx-tensorrt support matrix
(``docs/operators.md`` at tags 8.5-GA, 8.6-GA, 10.0-GA, 10.1-GA), parsed by
``scripts/gen_trt_op_table.py``. onnx-tensorrt publishes no newer matrix in the snapshot we read,
so TensorRT 10.2+ and 11.x are answered from the 10.1 table and say so (``assumed_from``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from collections import Counter
from dataclasses import dataclass
from typing import Any

from edge_se.errors import InputError

DEFAULT_TRT_VERSION = "10.1"


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = (Path(__file__).resolve().parent / "data/trt_onnx_ops.json").read_text(encoding="utf-8")
    return json.loads(text)


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def table_version(trt_version: str) -> tuple[str, str | None]:
    """The table key used for ``trt_version`` and, when it is not exact, the note saying so."""
    versions = sorted(_table()["versions"], key=_key)
    try:
        want = _key(trt_version)[:2]
    except ValueError:
        want = ()
    if not want:
        raise InputError(f"TensorRT version {trt_version!r} is not a version like 8.6 or 10.3")
    if want < _key(versions[0]):
        raise InputError(f"TensorRT {trt_version} is older than the oldest supported ({versions[0]})")
    exact = ".".join(map(str, want))
    if exact in versions:
        return exact, None
    best = [v for v in versions if _key(v) <= want][-1]
    return best, f"no published matrix for TensorRT {trt_version}; answered from the {best} matrix"


@dataclass(frozen=True)
class OpSupport:
    op: str
    count: int
    supported: bool | None  # None: not in NVIDIA's table at all
    restrictions: str
    types: tuple[str, ...]


def op_support(op_counts: dict[str, int], trt_version: str = DEFAULT_TRT_VERSION) -> dict[str, Any]:
    """Support of every op in ``op_counts`` (ONNX default domain) for ``trt_version``."""
    key, note = table_version(trt_version)
    entry = _table()["versions"][key]
    rows = []
    for op, count in sorted(op_counts.items()):
        info = entry["ops"].get(op)
        rows.append(
            OpSupport(
                op=op,
                count=count,
                supported=None if info is None else bool(info["supported"]),
                restrictions="" if info is None else info["restrictions"],
                types=() if info is None else tuple(info["types"]),
            )
        )
    return {
        "trt_version": trt_version,
        "table": key,
        "note": note,
        "provenance": entry.get("provenance", ""),
        "opset_range": [entry["opset_min"], entry["opset_max"]],
        "ops": rows,
        "unsupported": [r.op for r in rows if r.supported is False],
        "unknown": [r.op for r in rows if r.supported is None],
    }


def count_ops(model) -> dict[str, int]:
    """Operator counts of an ``onnx.ModelProto`` (subgraphs included; custom domains prefixed)."""
    counts: Counter[str] = Counter()

    def walk(graph) -> None:
        for node in graph.node:
            name = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[name] += 1
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return dict(counts)
