"""Check an ``--out`` bundle path before anything is loaded, traced or staged.

Staging (``edge_se.bundle.staged_bundle_dir``) creates the missing parent folders and a hidden
staging folder beside ``out``, then renames it onto ``out``. Paths where that cannot work are
refused here with one line (what, where, how to fix) instead of an OSError traceback later:

* an empty path, or one that is not valid UTF-8 (TorchScript's saver and the JSON manifest
  take text paths only);
* the current folder, a folder above it, or the filesystem root (replacing it would move the
  folder the command runs in);
* a path under an existing file, or under a folder where no folder can be created
  (``/proc``, ``/sys``, a read-only filesystem, no permission).

The writability probe creates and removes one empty folder in the nearest existing ancestor;
nothing else is created.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from edge_se.errors import InputError

FIX = "choose a writable folder"


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text (undecodable bytes as ``\\xNN``)."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def check_out_path(out: str | os.PathLike[str]) -> Path:
    """Refuse an unusable ``--out`` (see the module docstring); returns it as a Path."""
    text = os.fspath(out)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise InputError(f"--out is empty; {FIX} for the bundle, e.g. --out bundles/mymodel")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"--out {shown(text)}: the path is not valid UTF-8 (TorchScript and the manifest need text paths); "
            "choose a name with UTF-8 characters only"
        ) from None
    if "\0" in text:
        raise InputError(f"--out {text!r}: the path holds a NUL character; {FIX}")
    path = Path(text)
    try:
        resolved = path.resolve()
        cwd = Path.cwd().resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop, a vanished cwd
        raise InputError(f"--out {text}: cannot resolve the path ({_why(e)}); {FIX}") from None
    if resolved == Path(resolved.anchor) or resolved == cwd or resolved in cwd.parents:
        what = "the filesystem root" if resolved == Path(resolved.anchor) else (
            "the current folder" if resolved == cwd else "a folder above the current folder")
        raise InputError(
            f"--out {text} is {what}; a bundle replaces its --out folder, so choose a new folder "
            "such as --out bundles/mymodel"
        )
    # the nearest existing ancestor of out's parent must be a folder where a folder can be created
    parent = resolved.parent
    while not parent.exists() and not parent.is_symlink() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        what = "a file" if parent.is_file() else "not a folder"
        raise InputError(f"--out {text}: cannot create a folder there ({parent} is {what}); {FIX}")
    try:
        probe = tempfile.mkdtemp(prefix=".edge-se-probe-", dir=parent)
    except OSError as e:
        raise InputError(f"--out {text}: cannot create a folder in {parent} ({_why(e)}); {FIX}") from None
    try:
        os.rmdir(probe)
    except OSError:
        pass
    return path


def _why(e: OSError | RuntimeError) -> str:
    if isinstance(e, OSError):
        if e.errno == errno.ENOENT:  # /proc and the like answer a mkdir so
            return "No such file or directory: this filesystem does not take new folders"
        if e.strerror:
            return e.strerror
    return str(e) or type(e).__name__


__all__ = ["check_out_path", "shown"]
