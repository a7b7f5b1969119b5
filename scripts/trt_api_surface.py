#!/usr/bin/env python3
"""Regenerate (or check) edge_se/tensorrt/data/trt_api.json from the real TensorRT bindings wheels.

Test harness, not product code. For each version it downloads NVIDIA's Python bindings wheel from
PyPI (``pip download --no-deps``, about 1 MB each), and lists every class, enum member, method
and property the extension module defines, marking those whose docstring says "deprecated".

The bindings need TensorRT's libraries (libnvinfer, libnvonnxparser, libnvinfer_plugin, ~1 GB
and not on PyPI for every version) just to be loaded. To *list* what they define, the script
compiles null stand-ins for the few C entry points the extension links to (every one returns 0)
and loads the extension against them in a subprocess. Nothing is run through the stand-ins: no
object is constructed, only ``dir()`` and docstrings are read. Product code never uses them.

    python scripts/trt_api_surface.py            # rewrite the table
    python scripts/trt_api_surface.py --check    # compare with the checked-in table (exit 1 if not equal)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "edge_se" / "tensorrt" / "data" / "trt_api.json"
#: table key -> pip requirement of the real bindings wheel
WHEELS = {
    "8.6": "tensorrt-bindings==8.6.1",
    "10.3": "tensorrt-cu12-bindings==10.3.0",
    "10.16": "tensorrt-cu12-bindings==10.16.1.11",
    "11.0": "tensorrt-cu12-bindings==11.0.0.114",
    "11.4": "tensorrt-cu12-bindings==11.4.0.106",
}
_SKIP_SYMBOL_PREFIXES = ("Py", "_Py", "_ITM", "__")

_LISTER = r"""
import importlib.machinery, importlib.util, inspect, json, sys
loader = importlib.machinery.ExtensionFileLoader("tensorrt", sys.argv[1])
spec = importlib.util.spec_from_file_location("tensorrt", sys.argv[1], loader=loader)
trt = importlib.util.module_from_spec(spec)
loader.exec_module(trt)

def deprecated(text):
    text = (text or "").lower()
    return "[deprecated]" in text or "deprecated in tensorrt" in text

def status(doc):
    return "dep" if deprecated((doc or "")[:300]) else "yes"

out = {}
for name in sorted(dir(trt)):
    if name.startswith("_"):
        continue
    obj = getattr(trt, name)
    if inspect.isclass(obj) and hasattr(obj, "__members__"):
        # pybind11 enums document their members in the class docstring: "NAME : [DEPRECATED] ..."
        doc = obj.__doc__ or ""
        members = {}
        lines = doc.splitlines()
        starts = [i for i, l in enumerate(lines) if " : " in l and l.strip().split(" :")[0] in obj.__members__]
        for m in obj.__members__:
            i = next((i for i in starts if lines[i].strip().split(" :")[0] == m), None)
            nxt = min([j for j in starts if i is not None and j > i] or [len(lines)])
            members[m] = "dep" if i is not None and deprecated(" ".join(lines[i:nxt])) else "yes"
        out[name] = {"kind": "enum", "members": members}
    elif inspect.isclass(obj):
        members = {}
        for m in dir(obj):
            if m.startswith("_"):
                continue
            attr = inspect.getattr_static(obj, m, None)
            members[m] = status(getattr(attr, "__doc__", None))
        out[name] = {"kind": "class", "status": status(obj.__doc__), "members": members}
    elif callable(obj):
        out[name] = {"kind": "function", "status": status(obj.__doc__), "members": {}}
print(json.dumps(out))
"""


def _stub_libraries(so: Path, work: Path) -> Path:
    """Null stand-ins for the TensorRT libraries ``so`` links to, in a folder for LD_LIBRARY_PATH."""
    needed = [line.split("[", 1)[1].rstrip("]") for line in
              subprocess.run(["readelf", "-d", str(so)], check=True, capture_output=True, text=True).stdout.splitlines()
              if "(NEEDED)" in line and "nv" in line]
    # Undefined, non-weak symbols without a version tag (glibc/libstdc++ ones carry "@GLIBC..."):
    # the TensorRT entry points (C factories, and C++ ones such as the Caffe/UFF parsers on 8.x).
    symbols = sorted({
        parts[1] for parts in (line.split() for line in subprocess.run(
            ["nm", "-D", "--undefined-only", str(so)], check=True, capture_output=True, text=True).stdout.splitlines())
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not parts[1].startswith(_SKIP_SYMBOL_PREFIXES)
    })
    src = work / "stub.c"
    src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    libdir = work / "lib"
    libdir.mkdir()
    for soname in needed:
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(libdir / soname), str(src)], check=True)
    return libdir


def list_wheel(requirement: str, work: Path) -> dict:
    """The API table of one bindings wheel."""
    dl = work / "dl"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl), requirement],
                   check=True, capture_output=True, text=True)
    wheel = next(dl.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith("tensorrt.so"))
        z.extract(member, work / "x")
    so = work / "x" / member
    libdir = _stub_libraries(so, work)
    res = subprocess.run([sys.executable, "-c", _LISTER, str(so)], capture_output=True, text=True,
                         env={"LD_LIBRARY_PATH": str(libdir), "PATH": "/usr/bin:/bin"})
    if res.returncode != 0:
        raise RuntimeError(f"listing {wheel.name} failed: {res.stderr.strip()[-500:]}")
    return {"wheel": wheel.name, "api": json.loads(res.stdout)}


def build_table() -> dict:
    versions = {}
    for key, req in WHEELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            versions[key] = list_wheel(req, Path(tmp))
    return {"generator": "scripts/trt_api_surface.py", "versions": versions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the checked-in table")
    args = ap.parse_args()
    text = json.dumps(build_table(), indent=0, sort_keys=True) + "\n"
    if args.check:
        same = TABLE.read_text() == text
        print("TensorRT API table matches the real wheels" if same else f"{TABLE} differs from the wheels; regenerate it")
        return 0 if same else 1
    TABLE.write_text(text)
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
