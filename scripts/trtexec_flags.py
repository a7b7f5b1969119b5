#!/usr/bin/env python3
"""Regenerate edge_se/tensorrt/data/trtexec_flags.json from NVIDIA's trtexec source.

Reads ``samples/common/sampleOptions.cpp`` at each release tag of a local clone of
github.com/NVIDIA/TensorRT and lists every flag that trtexec's ``--help`` documents (the
``*Options::help`` functions; the safety checker's options are left out), marking those whose
help text says they are deprecated. Usage::

    python scripts/trtexec_flags.py /path/to/TensorRT.git [--check]

``--check`` compares with the checked-in table instead of writing it (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "edge_se" / "tensorrt" / "data" / "trtexec_flags.json"
#: TensorRT version -> git tag of NVIDIA/TensorRT holding that release's trtexec source.
TAGS = {
    "8.5": "8.5.3", "8.6": "v8.6.1",
    **{f"10.{m}": f"v10.{m}.0" for m in range(0, 11)},
    "10.11": "v10.11", "10.12": "v10.12.0", "10.13": "v10.13.3", "10.14": "v10.14",
    "10.15": "v10.15", "10.16": "v10.16", "11.0": "v11.0", "11.1": "v11.1",
}
HELP_SECTIONS = ("BaseModelOptions", "UffInput", "ModelOptions", "BuildOptions", "SystemOptions",
                 "InferenceOptions", "TuningOptions", "ReportingOptions", "AllOptions")
_FLAG_LINE = re.compile(r'^\s*(?:os\s*<<\s*)?R?"\(?\s{2}(--[A-Za-z0-9]+(?:(?:,\s*|\s+or\s+)-{1,2}[A-Za-z0-9]+)*)(.*)$')


def flags_in_source(source: str) -> dict[str, str]:
    """Flag -> "yes" | "deprecated" for every flag documented by the trtexec help functions."""
    out: dict[str, str] = {}
    for section in HELP_SECTIONS:
        m = re.search(rf"^void {section}::help\(std::ostream& os[^)]*\)\n\{{\n(.*?)^\}}", source, re.S | re.M)
        if not m:
            continue
        for line in m.group(1).splitlines():
            fm = _FLAG_LINE.match(line)
            if not fm:
                continue
            status = "deprecated" if "deprecated" in fm.group(2).lower() else "yes"
            for name in re.findall(r"-{1,2}[A-Za-z0-9]+", fm.group(1)):
                out[name] = status
    return dict(sorted(out.items()))


def build_table(repo: Path) -> dict:
    versions = {}
    for version, tag in TAGS.items():
        src = subprocess.run(["git", "--git-dir", str(repo), "show", f"{tag}:samples/common/sampleOptions.cpp"],
                             check=True, capture_output=True, text=True).stdout
        versions[version] = {"tag": tag, "flags": flags_in_source(src)}
    return {
        "source": "github.com/NVIDIA/TensorRT samples/common/sampleOptions.cpp, *Options::help at each tag",
        "generator": "scripts/trtexec_flags.py",
        "versions": versions,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo", type=Path, help="git directory of a clone of NVIDIA/TensorRT")
    ap.add_argument("--check", action="store_true", help="compare with the checked-in table")
    args = ap.parse_args()
    table = build_table(args.repo)
    text = json.dumps(table, indent=1, sort_keys=False) + "\n"
    if args.check:
        same = TABLE.read_text() == text
        print("trtexec flag table is up to date" if same else f"{TABLE} differs from the source; regenerate it")
        return 0 if same else 1
    TABLE.write_text(text)
    print(f"wrote {TABLE} ({len(table['versions'])} versions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
