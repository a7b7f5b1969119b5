"""Output folders for serving configs: staged, published by one rename, marked as edge-se's.

A folder edge-se writes here carries :data:`MARKER`; ``--force`` replaces only such a folder (or
an empty one), never one edge-se did not make. Every file copied from a bundle is sha256-checked
against the manifest on the way in and again at its destination.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from edge_se.bundle import Bundle, atomic_write_json, sha256_file, staged_dir, utc_now
from edge_se.errors import BundleError, InputError, IntegrityError

MARKER = ".edge-se-serving.json"
MARKER_FORMAT = "edge-se-serving"


def is_serving_dir(path: Path) -> bool:
    """True when ``path`` holds a parseable edge-se serving marker."""
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == MARKER_FORMAT


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that exists unless it is empty, or edge-se's and ``force`` is given."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if not is_serving_dir(out):
        raise InputError(f"--out {out} is a non-empty folder edge-se did not write (no {MARKER}); edge-se never "
                         "replaces it: choose another --out or empty it yourself")
    if not force:
        raise InputError(f"--out {out} already holds an edge-se serving folder; pass --force to replace it")


@contextlib.contextmanager
def staged_output(out: Path, force: bool, kind: str, bundle: Bundle) -> Iterator[Path]:
    """A staging folder that replaces ``out`` (marker written last) only if the body succeeds."""
    check_out(out, force)
    with staged_dir(out) as stage:
        yield stage
        atomic_write_json(stage / MARKER, {"format": MARKER_FORMAT, "kind": kind, "bundle": str(bundle.root),
                                           "created": utc_now()})


def main_file_entry(bundle: Bundle, artifact: str) -> dict[str, Any]:
    """The manifest entry of an artifact's main file (an engine's sidecar and script are its other files)."""
    record = bundle.artifact(artifact)
    for entry in record["files"]:
        if entry.get("path") == record["path"]:
            return entry
    raise BundleError(f"artifact {artifact}: its path {record['path']!r} is not among its files; rebuild it")


def copy_verified(bundle: Bundle, entry: dict[str, Any], dest: Path) -> Path:
    """Copy one manifest file entry to ``dest``; both ends must match the manifest's sha256."""
    src = bundle.verify_file(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    if sha256_file(dest) != entry["sha256"]:
        raise IntegrityError(f"{src} changed while it was copied to {dest}; run the command again")
    return dest
