"""Helpers for the trust-boundary tests: real bundles made by the real export, and hostile edits.

Imported by name (tests/ is no package). Every bundle here is written by ``edge-se export`` itself;
the tests then change what an attacker can change (the manifest, the files) and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path


def evil_model(benign: Path, marker: Path) -> str:
    """``benign``'s source plus a line that writes ``marker`` on import (what a hostile bundle runs)."""
    return Path(benign).read_text() + f"\nopen({str(marker)!r}, 'w').write('owned')\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest(bundle: Path) -> dict:
    return json.loads((Path(bundle) / "manifest.json").read_text())


def write_manifest(bundle: Path, data: dict) -> None:
    (Path(bundle) / "manifest.json").write_text(json.dumps(data, indent=2))


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``edge-se ARGS`` in a subprocess (the real entry point), output captured."""
    return subprocess.run([sys.executable, "-m", "edge_se.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def one_line(text: str) -> str:
    """The single non-empty line of ``text`` (fails the test when there are more)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def sample_image() -> Path:
    """A real photo shipped with scikit-learn."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


TRT_RECIPE = """{name}
[model]
spec = "tiny"
input_shape = [1, 3, 32, 32]
batch = [1, 1, 4]
{input_name}
[target]
name = "jetson-orin"
tensorrt = ">=10.3,<10.4"

[precision]
mode = "fp16"
"""


def recipe_text(name: str | None = None, input_name: str | None = None) -> str:
    """A minimal FP16 Orin recipe; ``name``/``input_name`` are written as TOML strings when given."""
    return TRT_RECIPE.format(name="" if name is None else f"name = {json.dumps(name)}",
                             input_name="" if input_name is None else f"input_name = {json.dumps(input_name)}")


def tree(root: Path) -> set[str]:
    """Every path below ``root``, relative."""
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}
