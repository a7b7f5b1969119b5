"""Library code never writes to stdout (that is the commands' result channel): no bare ``print(``,
``sys.stdout.write`` or stdout rich ``Console()`` outside ``edge_se/commands/`` and ``edge_se/cli.py``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edge_se"
SKIP = ("commands/", "cli.py", "__main__.py")
#: file -> why it may write stdout (each entry must still be needed: see the last test)
ALLOWED = {
    "models/catalog.py": "its `python -m edge_se.models.catalog` block prints the path of the zoo.json it regenerated",
}


def _stdout_writes(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        kw = {k.arg: k.value for k in node.keywords}
        if isinstance(f, ast.Name) and f.id == "print":
            target = kw.get("file")
            if target is None or ast.unparse(target) in ("sys.stdout", "sys.__stdout__"):
                lines.append(node.lineno)
        elif isinstance(f, ast.Attribute) and ast.unparse(f) in ("sys.stdout.write", "sys.stdout.writelines"):
            lines.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id == "Console" and not (
                "stderr" in kw and isinstance(kw["stderr"], ast.Constant) and kw["stderr"].value is True) \
                and "file" not in kw:
            lines.append(node.lineno)
    return lines


def _library_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(SKIP) and rel not in SKIP:
            files[rel] = path
    return files


def test_library_code_does_not_write_to_stdout():
    found = {}
    for rel, path in _library_files().items():
        lines = _stdout_writes(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if lines and rel not in ALLOWED:
            found[rel] = lines
    assert not found, f"stdout writes in library code (log through edge_se.progress / logging instead): {found}"


def test_every_exception_is_still_needed():
    files = _library_files()
    for rel in ALLOWED:
        assert rel in files and _stdout_writes(ast.parse(files[rel].read_text(encoding="utf-8"))), rel
