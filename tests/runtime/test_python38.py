"""JetPack 5 (Xavier, TensorRT 8.5) ships Python 3.8: the package must parse and import there.

No 3.8 interpreter exists here, so vermin (a static minimum-version checker) reads every module
for syntax, standard-library modules, members and keyword arguments newer than 3.8. Annotations
are not evaluated at run time (``from __future__ import annotations`` everywhere), so ``X | None``
in them is fine; anything evaluated is not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edge_se"


def _vermin(*paths: str | Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("vermin")  # its console script (the package has no __main__)
    run = subprocess.run([str(exe), "-t=3.8-", "--no-tips", "--violations", *map(str, paths)],
                         capture_output=True, text=True, timeout=300)
    assert "Analyzing" in run.stdout or "Detecting" in run.stdout, run.stderr[-500:]  # vermin itself ran
    return run


def test_every_module_of_the_package_runs_on_python_3_8():
    run = _vermin(PACKAGE)
    assert run.returncode == 0 and "Target versions not met" not in run.stdout, run.stdout[-3000:]


#: methods newer than 3.8 on values vermin cannot type (str.removesuffix 3.9, Path.is_relative_to 3.9, ...)
_NEWER_METHODS = {"removesuffix", "removeprefix", "is_relative_to", "with_stem", "readlink", "hardlink_to",
                  "bit_count", "is_junction"}
_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}
_TYPES = {"int", "float", "str", "bytes", "bool", "list", "dict", "tuple", "set", "frozenset", "type", "object"}


def _runtime_bitor_of_types_or_dicts(tree: ast.AST) -> list[int]:
    """``X | Y`` on types (PEP 604, 3.10) or dicts (3.9), ``list[int]`` (3.9) and methods such as
    ``str.removesuffix`` (3.9), evaluated at run time:
    vermin's default check does not see them (its union-types feature also flags annotations, which
    never run here)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        for ann in [getattr(node, "annotation", None), getattr(node, "returns", None)]:
            if ann is not None:
                skip.update(id(n) for n in ast.walk(ann))

    def typeish(n: ast.AST) -> bool:
        return (isinstance(n, ast.Name) and n.id in _TYPES) or (isinstance(n, ast.Constant) and n.value is None)

    def dictish(n: ast.AST) -> bool:
        return isinstance(n, (ast.Dict, ast.DictComp)) or (
            isinstance(n, ast.Call) and (getattr(n.func, "id", None) == "dict" or getattr(n.func, "attr", "") == "to_dict"))

    hits = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            if (typeish(node.left) and typeish(node.right)) or dictish(node.left) or dictish(node.right):
                hits.append(node.lineno)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.BitOr) and dictish(node.value):
            hits.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in _GENERICS:
            hits.append(node.lineno)  # list[int] evaluated at run time (an alias, a cast): 3.9
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _NEWER_METHODS:
            hits.append(node.lineno)
    return hits


def test_no_union_or_builtin_generic_is_evaluated_at_run_time():
    found = [f"{p.relative_to(PACKAGE.parent)}:{line}" for p in sorted(PACKAGE.rglob("*.py"))
             for line in _runtime_bitor_of_types_or_dicts(ast.parse(p.read_text(encoding="utf-8")))]
    assert not found, "Python 3.8 cannot evaluate these: " + ", ".join(found)


def test_the_union_check_sees_runtime_unions_and_not_annotations():
    code = ("def f(a: int | None) -> dict | None:\n    return isinstance(a, int | str)\n"
            "x = {'a': 1} | {'b': 2}\ny: str | None = None\nflags = 1 | 2\nAlias = dict[str, int]\n"
            "z: list[int] = []\nstem = name.removesuffix('.engine')\n")
    assert sorted(_runtime_bitor_of_types_or_dicts(ast.parse(code))) == [2, 3, 6, 8]


def test_the_check_fails_on_newer_code(tmp_path):
    for name, code in (("match.py", "match x:\n    case 1:\n        pass\n"),
                       ("suffix.py", "'a.py'.removesuffix('.py')\n"),
                       ("toml.py", "import tomllib\n"),
                       ("zip.py", "zip([1], [2], strict=True)\n")):
        (tmp_path / name).write_text(code)
        run = _vermin(tmp_path / name)
        assert run.returncode != 0 and "Target versions not met" in run.stdout, (name, run.stdout)


def test_every_module_the_runtime_imports_is_checked(tmp_path):
    """The runtime subset really is what the check covers: the modules a prediction loads."""
    code = ("import sys, numpy as np\nfrom edge_se.runtime import Runtime\n"
            f"rt = Runtime.load({str(tmp_path / 'm.onnx')!r})\nrt.run(np.zeros((1, 3, 8, 8), np.float32))\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('edge_se'))))\n"
            "print('torch' in sys.modules)")
    import onnx
    from onnx import helper

    g = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "g",
                          [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    modules, torch_loaded = run.stdout.split("\n")[:2]
    assert torch_loaded == "False" and "edge_se.runtime.core" in modules.split()
    files = [PACKAGE.parent / (m.replace(".", "/") + ".py") for m in modules.split()]
    files = [f if f.is_file() else f.with_suffix("") / "__init__.py" for f in files]
    assert all(f.is_file() for f in files)
    result = _vermin(*files)
    assert result.returncode == 0, result.stdout[-2000:]
