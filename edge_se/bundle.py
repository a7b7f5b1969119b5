"""Bundles: one folder per export, described by ``manifest.json``.

A bundle lists every artifact (relative paths and sha256 of each of its files, stage, precision,
policy, backend, input/output specs, tool versions) and every check's result. Stages are
functions ``Bundle -> Bundle``; every file is written to a temporary name and renamed, and the
manifest is written last, so an interrupted or failed stage never leaves an artifact that the
manifest vouches for.

This module imports only the standard library: the embedded runtime depends on it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edge_se import __version__
from edge_se.errors import BundleError, IntegrityError

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "edge-se-bundle"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------- files
def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    On any exception the temporary file is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` through a temporary file and a rename."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``final`` through a temporary file and a rename."""
    atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``final`` atomically."""
    atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json_document(path: Path, fmt: str, error: type[Exception], what: str, fix: str) -> dict[str, Any]:
    """Read a JSON file that must be an object with ``"format": fmt``.

    Unreadable text, invalid JSON or another format raise ``error`` with one line naming the file,
    ``what`` it should be, and ``fix``.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path} is not {what} (missing \"format\": \"{fmt}\"); {fix}")
    return data


def utc_now() -> str:
    """Current UTC time, ISO 8601, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------- staging
@contextlib.contextmanager
def staged_bundle_dir(out: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Build a new bundle in a hidden sibling folder and move it onto ``out`` on success.

    ``out`` must not exist, be empty, or be an existing bundle (replaced only with ``force``).
    A folder holding other files is refused unless ``force``. On failure nothing is published.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise BundleError(f"output path {out} exists and is not a folder; choose another --out")
        entries = [p for p in out.iterdir()]
        is_bundle = (out / MANIFEST_NAME).is_file()
        if entries and not force:
            what = "an existing edge-se bundle" if is_bundle else "a folder that is not an edge-se bundle"
            raise BundleError(
                f"output folder {out} already exists and is {what}; pass --force to replace it "
                "or choose another --out"
            )
    with staged_dir(out) as stage:
        yield stage


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``out``; on success it replaces ``out`` by rename.

    On any exception the staging folder is removed and ``out`` is left as it was. Callers check
    first whether ``out`` may be replaced.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the published folder gets the usual mode
    try:
        yield stage
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------------- bundle
class Bundle:
    """A bundle folder and its manifest (a plain dict, JSON-serializable).

    Artifacts are keyed by their main file's relative path (``model.onnx``, ``model.ts``, ...).
    """

    def __init__(self, root: str | os.PathLike[str], manifest: dict[str, Any]):
        self.root = Path(root)
        self.manifest = manifest

    # -- construction --------------------------------------------------------------------
    @classmethod
    def new(cls, root: str | os.PathLike[str], **header: Any) -> "Bundle":
        """A fresh, empty manifest for a bundle rooted at ``root`` (nothing written yet)."""
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": utc_now(),
            "edge_se_version": __version__,
            **header,
            "artifacts": {},
            "checks": [],
        }
        return cls(root, manifest)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> "Bundle":
        """Open an existing bundle; clear errors for a missing folder or a bad manifest."""
        root = Path(root)
        if not root.exists():
            raise BundleError(f"bundle folder {root} does not exist; create one with 'edge-se export'")
        if not root.is_dir():
            raise BundleError(f"{root} is a file, not a bundle folder; pass the folder holding manifest.json")
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise BundleError(
                f"{root} has no {MANIFEST_NAME}, so it is not an edge-se bundle; "
                "create one with 'edge-se export MODEL --out DIR'"
            )
        manifest = read_json_document(
            path, FORMAT_NAME, BundleError, "an edge-se manifest", "re-create the bundle with 'edge-se export'"
        )
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{path} has format_version {version!r}; this edge-se reads version {FORMAT_VERSION}. "
                "Re-export the bundle with this edge-se version"
            )
        if not isinstance(manifest.get("artifacts"), dict):
            raise BundleError(f"{path} has no \"artifacts\" table; re-create the bundle with 'edge-se export'")
        manifest.setdefault("checks", [])
        return cls(root, manifest)

    # -- artifacts -----------------------------------------------------------------------
    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        return self.manifest["artifacts"]

    def add_artifact(
        self,
        name: str,
        *,
        stage: str,
        format: str,
        precision: str,
        backend: str,
        extra_files: list[str] | None = None,
        **meta: Any,
    ) -> dict[str, Any]:
        """Record the artifact whose main file is ``root/name`` (already written) with hashes."""
        files = [name, *(extra_files or [])]
        entries = []
        for rel in files:
            path = self.root / rel
            if not path.is_file():
                raise BundleError(f"artifact file {path} is missing; the stage that writes it did not finish")
            entries.append({"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        record = {
            "path": name,
            "files": entries,
            "stage": stage,
            "format": format,
            "precision": precision,
            "backend": backend,
            "created": utc_now(),
            **meta,
        }
        self.artifacts[name] = record
        return record

    def artifact(self, name: str) -> dict[str, Any]:
        """The manifest record of artifact ``name``; lists the available ones on a miss."""
        try:
            return self.artifacts[name]
        except KeyError:
            have = ", ".join(sorted(self.artifacts)) or "none"
            raise BundleError(f"bundle {self.root} has no artifact {name!r} (it has: {have})") from None

    def find(self, *, format: str | None = None, precision: str | None = None, **match: Any) -> list[str]:
        """Names of artifacts whose fields equal the given values."""
        out = []
        for name, rec in self.artifacts.items():
            if format is not None and rec.get("format") != format:
                continue
            if precision is not None and rec.get("precision") != precision:
                continue
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(name)
        return out

    def path(self, name: str) -> Path:
        """Absolute path of an artifact's main file (no verification)."""
        return self.root / self.artifact(name)["path"]

    def verify(self, name: str) -> Path:
        """Check every file of artifact ``name`` against its manifest sha256; return its path."""
        record = self.artifact(name)
        for entry in record["files"]:
            path = self.root / entry["path"]
            if not path.is_file():
                raise BundleError(f"artifact file {path} listed in {self.root / MANIFEST_NAME} is missing")
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise IntegrityError(
                    f"sha256 mismatch for {path}: manifest says {entry['sha256'][:16]}..., file is "
                    f"{digest[:16]}...; the file was modified or corrupted. Re-export the bundle, or "
                    "pass --no-verify only if you trust the file"
                )
        return self.root / record["path"]

    # -- checks --------------------------------------------------------------------------
    def record_check(self, check: dict[str, Any]) -> None:
        """Append (or replace, by name + artifact) one check result."""
        key = (check.get("name"), check.get("artifact"))
        self.manifest["checks"] = [
            c for c in self.manifest["checks"] if (c.get("name"), c.get("artifact")) != key
        ] + [{"time": utc_now(), **check}]

    def save(self) -> Path:
        """Write manifest.json atomically."""
        path = self.root / MANIFEST_NAME
        atomic_write_json(path, self.manifest)
        return path
