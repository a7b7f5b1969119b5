#!/usr/bin/env python3
"""Generate edge_se/export/data/trt_onnx_ops.json from onnx-tensorrt's docs/operators.md.

Usage (with a clone of https://github.com/onnx/onnx-tensorrt):
    for t in 8.5-GA 8.6-GA 10.0-GA 10.1-GA; do git -C onnx-tensorrt show $t:docs/operators.md > /tmp/$t.md; done
    python scripts/gen_trt_op_table.py 8.5=/tmp/8.5-GA.md@<commit> 8.6=/tmp/8.6-GA.md@<commit> ...

Each argument is KEY=PATH@PROVENANCE. The table is NVIDIA's support matrix, parsed verbatim:
operator, Y/N, supported types, restrictions, and the opset range stated in the header.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "edge_se" / "export" / "data" / "trt_onnx_ops.json"


def parse(md: str) -> dict:
    header = next((line for line in md.splitlines() if "supports operators" in line), "")
    lo_hi = re.search(r"opset (\d+) to opset (\d+)", header)
    up_to = re.search(r"up to Opset (\d+)", header, re.I)
    opset_min, opset_max = (int(lo_hi[1]), int(lo_hi[2])) if lo_hi else (7, int(up_to[1]) if up_to else None)
    ops = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", cells[0]) or cells[0] == "Operator":
            continue
        supported = cells[1].upper().startswith("Y")
        types = [t.strip() for t in cells[2].split(",") if t.strip()] if len(cells) > 2 else []
        restrictions = cells[3].replace("\\.", ".").strip() if len(cells) > 3 else ""
        ops[cells[0]] = {"supported": supported, "types": types, "restrictions": restrictions}
        if "EXPERIMENTAL" in cells[1].upper():
            ops[cells[0]]["experimental"] = True
    return {"opset_min": opset_min, "opset_max": opset_max, "header": header.strip(), "ops": ops}


def main(argv: list[str]) -> int:
    table = {"source": "onnx/onnx-tensorrt docs/operators.md (NVIDIA's ONNX-TensorRT support matrix)", "versions": {}}
    for arg in argv:
        key, rest = arg.split("=", 1)
        path, _, prov = rest.partition("@")
        entry = parse(Path(path).read_text(encoding="utf-8"))
        entry["provenance"] = prov
        table["versions"][key] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    counts = ", ".join(f"{k}: {len(v['ops'])} ops" for k, v in table["versions"].items())
    print(f"wrote {OUT} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
