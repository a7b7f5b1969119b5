"""The one contract between stages, checked on the source: format names and import direction.

* No module but ``edge_se/manifest.py`` spells an artifact format (``"onnx"``, ``"tensorrt-engine"``,
  ...) where a manifest's ``format`` is written or compared: a writer and a reader that spelled
  one format two ways left the calibration cache and the engines invisible downstream.
* Imports go down the layers (ground -> models -> runtime -> reference -> stages -> report ->
  validate -> api/commands/cli), lazy imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edge_se.manifest import ARTIFACT_FORMATS

PACKAGE = Path(__file__).resolve().parents[2] / "edge_se"

#: lowest first; a module may import its own layer and those before it
LAYERS = [
    {"edge_se", "errors", "trust", "preprocess", "manifest", "progress", "bundle", "_callable"},
    {"attention", "models", "data"},
    {"runtime"},
    {"reference"},
    {"calibration"},
    {"export"},
    {"quantize"},
    {"tensorrt"},
    {"serving"},
    {"report"},
    {"validate"},
    {"api", "commands", "cli", "__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
#: (importer, imported) allowed upward, each with its reason
EXCEPTIONS = {
    ("edge_se", "api"): "edge_se.export(...) etc.: the package's lazy __getattr__ loads the API on first use",
    ("_callable", "api"): "the stage packages are callable as the API function of their name (lazy, at call time)",
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _room(rel: Path) -> str:
    return "edge_se" if rel.parts == ("__init__.py",) else rel.parts[0].removesuffix(".py")


def _imported_rooms(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "edge_se":
                out += [(node.lineno, "edge_se" if a.name == "__version__" else a.name) for a in node.names]
            elif node.module.startswith("edge_se."):
                out.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("edge_se.")]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                head = str(arg.values[0].value)
                if head.startswith("edge_se.") and head.count(".") >= 1 and head.split(".")[1]:
                    out.append((node.lineno, head.split(".")[1]))
    return out


def test_every_room_of_the_package_has_a_layer():
    rooms = {_room(rel) for rel, _ in _modules()}
    assert rooms <= set(LAYER), f"add {sorted(rooms - set(LAYER))} to LAYERS"


def test_imports_go_down_the_layers():
    wrong = []
    used = set()
    for rel, tree in _modules():
        me = _room(rel)
        for line, other in _imported_rooms(tree):
            if other not in LAYER or LAYER[other] <= LAYER[me]:
                continue
            if (me, other) in EXCEPTIONS:
                used.add((me, other))
                continue
            wrong.append(f"edge_se/{rel.as_posix()}:{line} ({me}, layer {LAYER[me]}) imports {other} (layer {LAYER[other]})")
    assert not wrong, "imports going up the layers:\n" + "\n".join(wrong)
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {sorted(set(EXCEPTIONS) - used)}"


def _format_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants equal to an artifact format, where a ``format`` is written or compared."""
    hits = []

    def is_format_ref(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return node.slice.value == "format"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "format"
        return False

    def literals(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [v for e in node.elts for v in literals(e)]
        return []

    for node in ast.walk(tree):
        values: list[str] = []
        if isinstance(node, ast.keyword) and node.arg == "format":
            values = literals(node.value)
        elif isinstance(node, ast.Dict):
            values = [v for k, val in zip(node.keys, node.values)
                      if isinstance(k, ast.Constant) and k.value == "format" for v in literals(val)]
        elif isinstance(node, ast.Compare) and any(is_format_ref(x) for x in [node.left, *node.comparators]):
            values = [v for x in [node.left, *node.comparators] for v in literals(x)]
        hits += [(getattr(node, "lineno", 0), v) for v in values if v in ARTIFACT_FORMATS]
    return hits


def test_no_module_but_the_contract_spells_an_artifact_format():
    found = [f"edge_se/{rel.as_posix()}:{line}: {value!r}" for rel, tree in _modules() if rel.as_posix() != "manifest.py"
             for line, value in _format_literals(tree)]
    assert not found, "use the names in edge_se/manifest.py:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    'bundle.add_artifact("x", format="onnx")',
    'if rec["format"] == "tensorrt-engine": pass',
    'names = [n for n, r in arts.items() if r.get("format") in ("torchscript", "onnx")]',
    'record = {"format": "tensorrt-calibration-cache"}',
])
def test_the_format_check_catches_each_spelling(source):
    assert _format_literals(ast.parse(source)), source


def test_the_import_check_sees_lazy_imports():
    tree = ast.parse("def f():\n    from edge_se.commands.bench import measure\n    import edge_se.api\n")
    assert [r for _, r in _imported_rooms(tree)] == ["commands", "api"]


#: what validation may use of the quantize package: the stage's public API (files the bundle
#: lacks are made by the stage itself) and the attention-gate patterns the report shows
VALIDATE_USES_OF_QUANTIZE = {"edge_se.quantize.stage", "edge_se.quantize.patterns"}


def test_validation_makes_missing_files_through_the_quantize_stage_not_its_internals():
    used = set()
    for rel, tree in _modules():
        if _room(rel) != "validate":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edge_se.quantize"):
                used.add(node.module)
    assert used <= VALIDATE_USES_OF_QUANTIZE, f"validate/ re-runs quantize internals: {sorted(used - VALIDATE_USES_OF_QUANTIZE)}"
    assert "edge_se.quantize.stage" in used
