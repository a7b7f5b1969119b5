"""Checks that make a bundle's ``model.pt2`` safe to hand to ``torch.export.load``.

``torch.export.load`` is not safe on untrusted files (torch's own docs say so): it falls back to
full pickle for sample inputs and pickled constants, runs ``pickle.loads`` on opaque objects,
``sympy.sympify`` (which evaluates Python) on shape expressions, ``exec`` on a program's
``guards_code``, and resolves every node's target by attribute lookup on ``torch``. Before loading, :func:`check_exported_program` reads the archive
as data and refuses anything beyond an ATen graph of plain tensors: a pickled weight or constant,
a custom or opaque object, a pickle that ``torch.load(weights_only=True)`` refuses, a shape
expression outside a small sympy vocabulary, any ``guards_code``, or an operator outside ``torch.ops.aten``/``prims``
and ``_operator``. Checking a .pt2 needs torch (for the restricted unpickler).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator

from edge_se.errors import BundleError

_TARGET_PREFIXES = ("torch.ops.aten.", "torch.ops.prims.", "_operator.")
_EXPR_WORDS = {"Symbol", "Integer", "Rational", "positive", "integer", "True", "False", "FloorDiv",
               "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
               "IntTrueDiv", "FloatTrueDiv", "Max", "Min", "Abs", "Pow", "Mul", "Add", "oo"}
_EXPR_CHARS = re.compile(r"[A-Za-z0-9_ ()+\-*/,.=']*")
_SYMBOL = re.compile(r"[a-z]{1,4}\d+")
_MAX_JSON = 256 * 1024 * 1024
_UPPER = re.compile(r"_size\[0\] > (\d+)\)")
_LOWER = re.compile(r"_size\[0\] < (\d+)\)")


def check_exported_program(path: str | Path) -> None:
    """Raise BundleError naming the first member of ``path`` that is more than plain data."""
    path = Path(path)
    where = f"{path}"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{where} is not a torch.export archive ({e}); re-export the bundle") from None
    with archive:
        names = archive.namelist()
        if not any(n.endswith("/models/model.json") or n.startswith("models/") for n in names):
            raise BundleError(f"{where} holds no torch.export program (no models/*.json); re-export the bundle")
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if "/data/constants/" in f"/{name}" and base.endswith(".pt"):
                _refuse(where, name, "a legacy pickled constants file")
            if base.endswith("_config.json") and "/data/" in f"/{name}":
                _check_payload_config(where, name, _json(archive, name, where))
            elif "/models/" in f"/{name}" and base.endswith(".json"):
                _check_program(where, name, _json(archive, name, where))
            elif base.endswith(".pt"):
                _check_pickle(where, name, archive.read(name))


def _refuse(where: str, member: str, what: str) -> None:
    raise BundleError(
        f"{where}: member {member} is {what}; edge-se loads only programs of ATen ops and plain tensors "
        "(torch.export.load would execute it). Re-export the bundle, or load the file yourself if you trust it"
    )


def _json(archive: zipfile.ZipFile, name: str, where: str) -> Any:
    if archive.getinfo(name).file_size > _MAX_JSON:
        raise BundleError(f"{where}: member {name} is larger than {_MAX_JSON >> 20} MiB of JSON; re-export the bundle")
    try:
        return json.loads(archive.read(name))
    except ValueError as e:
        raise BundleError(f"{where}: member {name} is not valid JSON ({e}); re-export the bundle") from None


def _check_payload_config(where: str, name: str, doc: Any) -> None:
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise BundleError(f"{where}: member {name} has no 'config' table; re-export the bundle")
    for fqn, meta in config.items():
        if not isinstance(meta, dict):
            raise BundleError(f"{where}: member {name}: entry {fqn!r} is not a table; re-export the bundle")
        path_name = str(meta.get("path_name", ""))
        if meta.get("use_pickle"):
            _refuse(where, name, f"a pickled tensor ({fqn})")
        if not path_name.startswith(("weight_", "tensor_")):
            _refuse(where, name, f"a custom or opaque object ({fqn}: {path_name[:60]})")


def _check_pickle(where: str, name: str, data: bytes) -> None:
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # the restricted unpickler names what it refused
        _refuse(where, name, f"a pickle that is not plain tensors ({type(e).__name__}: {str(e).splitlines()[0][:120]})")


def _nodes(obj: Any) -> Iterator[dict]:
    if isinstance(obj, dict):
        if "target" in obj and "inputs" in obj and "outputs" in obj:
            yield obj
        for value in obj.values():
            yield from _nodes(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _nodes(value)


def _expressions(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "expr_str":
                yield value if isinstance(value, str) else repr(value)
            else:
                yield from _expressions(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _expressions(value)


def _check_program(where: str, name: str, doc: Any) -> None:
    if isinstance(doc, dict) and doc.get("guards_code"):
        _refuse(where, name, "a program with guards_code (Python source that torch compiles and runs)")
    for node in _nodes(doc):
        target = node.get("target")
        if not isinstance(target, str) or not target.startswith(_TARGET_PREFIXES):
            _refuse(where, name, f"a graph calling {str(target)[:80]!r}, outside torch.ops.aten/prims and _operator")
    for expr in _expressions(doc):
        words = re.findall(r"[A-Za-z_][A-Za-z_0-9]*", expr)
        bad = [w for w in words if w not in _EXPR_WORDS and not _SYMBOL.fullmatch(w)]
        if not _EXPR_CHARS.fullmatch(expr) or bad or "__" in expr:
            _refuse(where, name, f"a shape expression that is not plain sympy ({expr[:80]!r})")


def package_info(path: Path) -> dict[str, Any]:
    """Platform, machine, CPU ISA and the first input's batch bounds read from an AOTI package."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            meta_name = next((n for n in names if n.endswith("wrapper_metadata.json")), None)
            meta = json.loads(z.read(meta_name)) if meta_name else {}
            wrapper = next((n for n in names if n.endswith(".wrapper.cpp")), None)
            text = z.read(wrapper).decode("utf-8", "replace") if wrapper else ""
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise BundleError(f"cannot read the AOTInductor package {path}: {e}; re-export it") from None
    block = text.split("static void check_input_0(", 1)[1].split("\n}\n", 1)[0] if "check_input_0(" in text else ""
    upper = _UPPER.search(block)
    lower = _LOWER.search(block)
    return {
        "platform": meta.get("AOTI_PLATFORM"),
        "machine": meta.get("AOTI_MACHINE"),
        "cpu_isa": meta.get("AOTI_CPU_ISA"),
        "device": meta.get("AOTI_DEVICE_KEY"),
        "baked_batch_max": int(upper.group(1)) if upper else None,
        "baked_batch_min": int(lower.group(1)) if lower else None,
    }
