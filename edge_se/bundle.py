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
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from edge_se import __version__
from edge_se.errors import BundleError, IntegrityError
from edge_se.manifest import ArtifactRecord, ModelRecord, artifact_record, model_record
from edge_se.trust import confined_path, safe_sha256

if TYPE_CHECKING:
    from edge_se.preprocess import PreprocessSpec

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "edge-se-bundle"
FORMAT_VERSION = 1
LOCK_NAME = ".edge-se.lock"
JOURNAL_NAME = ".edge-se.publish.json"
#: a writing stage waits this long (seconds) for another one holding the bundle, then fails
LOCK_TIMEOUT = float(os.environ.get("EDGE_SE_LOCK_TIMEOUT", "3600"))
#: temporary folders edge-se makes (in the system temp folder or a bundle) carry their owner's PID
#: after one of these prefixes, so a later run can remove those whose owner died
TEMP_PREFIXES = ("edge-se-calib-", "edge-se-tensors-", "edge-se-gptq-", "edge-se-cpu-int8-", "edge-se-quant-",
                 "edge-se-auto-")
BUNDLE_TEMP_PREFIXES = (".quantize-", ".build-")


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
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp", dir=final.parent)
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


# ------------------------------------------------------------------------- owned temp dirs
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def sweep_stale(folder: str | os.PathLike[str], prefixes: Sequence[str], suffix: str = "") -> list[Path]:
    """Remove entries ``<prefix><pid>-*<suffix>`` in ``folder`` whose owning process is gone.

    Only names edge-se makes are touched; an entry whose owner still runs (or whose name carries
    no PID) is left alone. Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        for prefix in prefixes:
            if not entry.name.startswith(prefix) or not entry.name.endswith(suffix):
                continue
            pid = _owner_pid(entry.name, prefix)
            if pid is None or pid == os.getpid() or _pid_alive(pid):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def sweep_temp() -> list[Path]:
    """Remove stale edge-se folders from the system temp folder (owners that died, e.g. SIGKILL)."""
    return sweep_stale(tempfile.gettempdir(), TEMP_PREFIXES)


def owned_mkdtemp(prefix: str, dir: str | os.PathLike[str] | None = None) -> Path:
    """``tempfile.mkdtemp`` whose name carries this process's PID (see :func:`sweep_stale`)."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dir))


@contextlib.contextmanager
def owned_tempdir(prefix: str, dir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary folder (PID in its name) removed on exit; stale ones of dead owners are swept first."""
    sweep_stale(dir if dir is not None else tempfile.gettempdir(), [prefix])
    path = owned_mkdtemp(prefix, dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------- staging
def is_bundle_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a parseable edge-se manifest (so edge-se made it)."""
    try:
        data = json.loads((Path(path) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


@contextlib.contextmanager
def staged_bundle_dir(out: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Build a new bundle in a hidden sibling folder and move it onto ``out`` on success.

    ``out`` must not exist or be empty; an existing edge-se bundle is replaced only with
    ``force``. Anything else (a folder edge-se did not make, a file) is refused, ``force`` or not.
    On failure nothing is published.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_dir():
            raise BundleError(f"output path {out} exists and is not a folder; choose another --out")
        entries = [p for p in out.iterdir()]
        if entries and not is_bundle_dir(out):
            raise BundleError(
                f"output folder {out} already exists and is not an edge-se bundle (no parseable {MANIFEST_NAME}); "
                "edge-se never replaces a folder it did not make: choose another --out or empty it yourself"
            )
        if entries and not force:
            raise BundleError(
                f"output folder {out} already exists and is an edge-se bundle; pass --force to replace it "
                "or choose another --out"
            )
    with staged_dir(out) as stage:
        yield stage


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``out``; on success it replaces ``out`` by rename.

    On any exception the staging folder is removed and ``out`` is left as it was. Callers check
    first whether ``out`` may be replaced. Staging left by a killed run is removed first.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out.parent, [f".{out.name}.staging-", f".{out.name}.old-"])
    stage = owned_mkdtemp(f".{out.name}.staging-", out.parent)
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the published folder gets the usual mode
    try:
        yield stage
        if out.exists():
            with bundle_lock(out) if is_bundle_dir(out) else contextlib.nullcontext():
                trash = owned_mkdtemp(f".{out.name}.old-", out.parent)
                os.replace(out, trash / "old")
                os.replace(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------- lock
_held: dict[str, int] = {}  # resolved bundle root -> how deep this process holds its lock
_held_guard = threading.Lock()


@contextlib.contextmanager
def bundle_lock(root: str | os.PathLike[str], timeout: float | None = None) -> Iterator[None]:
    """Exclusive lock on a bundle for a writing stage (``fcntl.flock`` on the bundle folder itself).

    While it is held, ``root/.edge-se.lock`` names the holder's PID (removed on release, so a
    finished stage leaves nothing behind). Re-entrant within a process. Another process holding
    it is waited for, with a message naming its PID, for ``timeout`` seconds (default
    :data:`LOCK_TIMEOUT`), then a one-line error.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): writing stages run unlocked there
        yield
        return
    key = str(Path(root).resolve())
    with _held_guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    pid_file = Path(key) / LOCK_NAME
    deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
    said = False
    while True:
        try:
            fd = os.open(key, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as e:
            raise BundleError(f"cannot lock bundle {root} ({e.strerror}); check that the folder exists and is readable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(pid_file)
            if time.monotonic() >= deadline:
                raise BundleError(
                    f"bundle {root} is being written by another edge-se process (PID {holder}); "
                    "wait for it to finish, or stop it, then run again"
                ) from None
            if not said:
                logging.getLogger("edge_se").warning("waiting for PID %s, which is writing bundle %s ...", holder, root)
                said = True
            time.sleep(0.2)
            continue
        try:  # the bundle may have been replaced (export --force) while we waited: lock the current one
            same = os.stat(key).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        atomic_write_text(pid_file, str(os.getpid()))
    except OSError:
        pass  # a read-only bundle can still be locked; the waiter then says "PID unknown"
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        with contextlib.suppress(OSError):
            pid_file.unlink()
        os.close(fd)  # releases the flock


def _read_pid(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, so a publish step is never cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def recover(root: str | os.PathLike[str]) -> bool:
    """Finish a publish step a killed stage left half done (its journal); True if one was found.

    The journal names the staged files and the manifest that vouches for them; it is written
    before the first file moves, so replaying it (moving what is still staged, then writing the
    manifest) is always safe. Call with the bundle lock held.
    """
    root = Path(root)
    journal = root / JOURNAL_NAME
    if not journal.is_file():
        return False
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        moves = [(confined_path(root, src, "journal entry"), confined_path(root, dst, "journal entry"))
                 for src, dst in data["moves"]]
        manifest = data["manifest"]
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ValueError("not a manifest")
    except (OSError, ValueError, KeyError, TypeError, BundleError):
        journal.unlink(missing_ok=True)  # never completed its own write: nothing moved yet
        return False
    for src, dst in moves:
        if src.exists():
            os.replace(src, dst)
    atomic_write_json(root / MANIFEST_NAME, manifest)
    journal.unlink(missing_ok=True)
    return True


def clean_bundle(root: str | os.PathLike[str]) -> list[str]:
    """Recover an interrupted publish and remove every temporary entry edge-se left in and beside ``root``.

    Only entries whose owning process is gone are removed; returns a line per thing done.
    """
    root = Path(root)
    done = []
    with bundle_lock(root):
        done += _tidy(root)
    for p in sweep_stale(root.parent, [f".{root.name}.staging-", f".{root.name}.old-"]):
        done.append(f"removed {p}")
    for p in sweep_temp():
        done.append(f"removed {p}")
    return done


def _tidy(root: Path) -> list[str]:
    """With the lock held: replay a dead stage's journal, then remove its staging and half-written files."""
    done = [f"finished an interrupted publish in {root}"] if recover(root) else []
    stale = sweep_stale(root, BUNDLE_TEMP_PREFIXES) + sweep_stale_tmp_files(root)
    return done + [f"removed {p}" for p in stale]


def sweep_stale_tmp_files(folder: Path) -> list[Path]:
    """Remove ``.<name>.<pid>-XXXX.tmp`` files of :func:`atomic_path` whose writer died."""
    removed = []
    for p in folder.iterdir():
        name = p.name
        if not (name.startswith(".") and name.endswith(".tmp") and p.is_file()):
            continue
        head = name[:-4].rsplit(".", 1)[-1]
        pid = head.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ----------------------------------------------------------------------------------- bundle
class Bundle:
    """A bundle folder and its manifest (a plain dict, JSON-serializable).

    Artifacts are keyed by their main file's relative path (``model.onnx``, ``model.ts``, ...).
    """

    def __init__(self, root: str | os.PathLike[str], manifest: dict[str, Any]):
        self.root = Path(root)
        self.manifest = manifest
        self._staged: dict[str, Path] = {}  # rel path -> staged file, while publishing

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
        bundle = cls(root, manifest)
        bundle.check_manifest()
        return bundle

    def check_manifest(self) -> None:
        """Refuse a manifest whose records are malformed or name files outside the bundle.

        Every error is one line naming the field; nothing is trusted: paths must be relative and
        stay inside the bundle, sha256 values must be 64 hex digits.
        """
        where = self.root / MANIFEST_NAME
        m = self.manifest
        if not isinstance(m.get("checks"), list):
            raise BundleError(f"{where}: 'checks' must be a list; re-create the bundle")
        for key in ("model", "preprocessing"):
            if key in m and m[key] is not None and not isinstance(m[key], dict):
                raise BundleError(f"{where}: '{key}' must be a table, found {type(m[key]).__name__}; re-create the bundle")
        for name, rec in m["artifacts"].items():
            field = f"artifacts[{name!r}]"
            typed = artifact_record(name, rec, str(where))  # types, formats, the decision: one line naming the field
            confined_path(self.root, typed.path, f"{field}.path")
            for i, entry in enumerate(rec["files"]):
                self._check_file_entry(entry, f"{field}.files[{i}]")
        labels = m.get("labels")
        if labels is not None:
            self._check_file_entry(labels, "labels")

    def _check_file_entry(self, entry: object, field: str) -> None:
        where = self.root / MANIFEST_NAME
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: {field} must be a table with path and sha256, found {entry!r:.80}; "
                              "re-create the bundle")
        confined_path(self.root, entry.get("path"), f"{field}.path")
        safe_sha256(entry.get("sha256"), f"{field}.sha256", str(where))

    def preprocessing(self) -> "PreprocessSpec":
        """The manifest's preprocessing as a :class:`~edge_se.preprocess.PreprocessSpec` (errors name the manifest)."""
        from edge_se.preprocess import PreprocessSpec

        return PreprocessSpec.from_dict(self.section("preprocessing"), f"{self.root / MANIFEST_NAME}: preprocessing")

    def section(self, name: str) -> dict[str, Any]:
        """The manifest's ``model`` or ``preprocessing`` table, with a one-line error naming what is missing."""
        where = self.root / MANIFEST_NAME
        value = self.manifest.get(name)
        if not isinstance(value, dict):
            raise BundleError(f"{where} has no '{name}' table; re-create the bundle with 'edge-se export'")
        if name == "model":
            model_record(value, str(where))  # the typed fields, checked (one line naming a bad one)
        return value

    def model(self) -> ModelRecord:
        """The typed ``model`` table (:class:`~edge_se.manifest.ModelRecord`)."""
        return model_record(self.manifest.get("model"), str(self.root / MANIFEST_NAME))

    def record(self, name: str) -> ArtifactRecord:
        """The typed record of artifact ``name`` (:class:`~edge_se.manifest.ArtifactRecord`)."""
        return artifact_record(name, self.artifact(name), str(self.root / MANIFEST_NAME))

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
        entries = [self.file_entry(rel) for rel in [name, *(extra_files or [])]]
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
        """Absolute path of an artifact's main file (no verification; always inside the bundle)."""
        return confined_path(self.root, self.artifact(name)["path"], f"artifacts[{name!r}].path")

    def verify(self, name: str) -> Path:
        """Check every file of artifact ``name`` against its manifest sha256; return its path."""
        record = self.artifact(name)
        for entry in record["files"]:
            self.verify_file(entry)
        return self.path(name)

    def verify_file(self, entry: dict[str, Any]) -> Path:
        """Check one ``{path, sha256}`` entry of the manifest (inside the bundle, hash matches)."""
        path = confined_path(self.root, entry.get("path"), "file")
        want = safe_sha256(entry.get("sha256"), f"sha256 of {entry.get('path')!r}", str(self.root / MANIFEST_NAME))
        if not path.is_file():
            raise BundleError(f"file {path} listed in {self.root / MANIFEST_NAME} is missing")
        digest = sha256_file(path)
        if digest != want:
            raise IntegrityError(
                f"sha256 mismatch for {path}: manifest says {want[:16]}..., file is "
                f"{digest[:16]}...; the file was modified or corrupted. Re-export the bundle, or "
                "pass --no-verify only if you trust the file"
            )
        return path

    def file_entry(self, rel: str) -> dict[str, Any]:
        """A ``{path, sha256, bytes}`` entry for a file already inside the bundle (or being published)."""
        path = self._staged.get(rel) or confined_path(self.root, rel, "artifact file")
        if not path.is_file():
            raise BundleError(f"artifact file {path} is missing; the stage that writes it did not finish")
        return {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}

    def subset(self, root: str | os.PathLike[str], names: Sequence[str]) -> "Bundle":
        """A new bundle at ``root`` (a missing or empty folder) holding only the artifacts ``names``.

        Its manifest keeps this one's header (model, preprocessing, labels, tools) and no checks.
        Every file copied (the artifacts' files, the labels file, an imported ONNX reference) is
        sha256-checked first, then hard-linked, or copied where linking fails. Stages run on the
        subset exactly as on a bundle of their own.
        """
        root = Path(root)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise BundleError(f"{root} exists and is not an empty folder; pass a new folder for the bundle subset")
        header = {k: v for k, v in self.manifest.items() if k not in ("artifacts", "checks", "timings")}
        sub = Bundle(root, json.loads(json.dumps({**header, "artifacts": {}, "checks": []})))
        entries = [e for n in names for e in self.artifact(n)["files"]]
        reference = (self.manifest.get("model") or {}).get("reference")
        for extra in (self.manifest.get("labels"), reference.get("entry") if isinstance(reference, dict) else None):
            if isinstance(extra, dict):
                entries.append(extra)
        made = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        try:
            for entry in entries:
                src = self.verify_file(entry)
                dst = confined_path(root, entry["path"], "file")
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            for n in names:
                sub.artifacts[n] = json.loads(json.dumps(self.artifacts[n]))
            sub.save()
        except BaseException:  # leave nothing half-made: the folder was missing or empty before
            if made:
                shutil.rmtree(root, ignore_errors=True)
            else:
                for p in root.iterdir():
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink()
            raise
        return sub

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator["Bundle"]:
        """Hold the bundle's lock for a writing stage; the manifest is re-read once it is held.

        Also finishes a publish a killed stage left half done, and removes its staging.
        """
        with bundle_lock(self.root):
            _tidy(self.root)
            fresh = Bundle.open(self.root)
            self.manifest = fresh.manifest
            yield self

    @contextlib.contextmanager
    def publishing(self, staging: Path, files: Sequence[str]) -> Iterator["Bundle"]:
        """Publish ``files`` from ``staging`` together with the manifest, as one step.

        Inside the block, record the artifacts (``add_artifact`` hashes the staged files) and
        checks. On a clean exit a journal (the new manifest and the moves) is written, the files
        are moved into place and the manifest saved, with Ctrl-C held off; a kill in between is
        finished by the next writer (:func:`recover`). On an exception nothing is published.
        """
        with bundle_lock(self.root):
            self._staged = {rel: Path(staging) / rel for rel in files}
            try:
                yield self
                moves = [(os.path.relpath(self._staged[rel], self.root), rel) for rel in files]
            finally:
                self._staged = {}
            with _sigint_deferred():
                atomic_write_json(self.root / JOURNAL_NAME, {"moves": moves, "manifest": self.manifest})
                recover(self.root)

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
