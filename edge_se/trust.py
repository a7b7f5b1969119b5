"""The trust boundary: values read from a bundle, recipe, manifest or checkpoint are data.

Every name that becomes a file name or is written into a script, every sha256 that is pasted
into one, and every path a manifest names goes through these checks. They raise
:class:`~edge_se.errors.BundleError` (exit 2) with one line naming the value and where it came
from. Standard library only: the embedded runtime depends on it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from edge_se.errors import BundleError

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def safe_name(value: object, what: str, where: str = "") -> str:
    """``value`` if it is a plain file-name part (``[A-Za-z0-9._-]+``, not ``.``/``..``)."""
    at = f"{where}: " if where else ""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        raise BundleError(
            f"{at}{what} {value!r} is not a plain name; use only letters, digits, '.', '_' and '-'"
        )
    return value


def safe_sha256(value: object, what: str, where: str = "") -> str:
    """``value`` if it is a lower-case hex sha256 (64 characters)."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        at = f"{where}: " if where else ""
        raise BundleError(f"{at}{what} {str(value)[:80]!r} is not a sha256 (64 hex digits); re-create the bundle")
    return value


def confined_path(root: str | os.PathLike[str], rel: object, what: str) -> Path:
    """``root / rel`` for a relative, normalized path that stays inside ``root`` (symlinks too).

    Refuses absolute paths, ``..`` parts, backslashes, empty parts and anything whose resolved
    location is outside ``root``.
    """
    root = Path(root)
    where = root / "manifest.json"
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise BundleError(f"{where}: {what} {rel!r} is not a relative path inside the bundle; re-create the bundle")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(p in ("", ".", "..") for p in rel.split("/")):
        raise BundleError(
            f"{where}: {what} {rel!r} points outside the bundle (absolute or with '..'); "
            "a bundle may only name files inside its own folder"
        )
    path = root / Path(*pure.parts)
    inside_root(root, path, what)
    return path


def inside_root(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if its resolved location (symlinks followed) is inside ``root``'s."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target != base and base not in target.parents:
        raise BundleError(
            f"{what} {path} resolves to {target}, outside {base}; edge-se reads and writes only inside the bundle"
        )
    return Path(path)
