"""A local Triton server on loopback, from the ``tritonserver`` that ``nvidia-pytriton`` ships.

For tests, benchmarks and trying a repository on a workstation; production runs NVIDIA's Triton
container or JetPack's Triton release (docs/serving.md). pytriton's wheel holds Triton 2.x with
the Python backend only (no onnxruntime or tensorrt backends), so it serves ``--serve python``
repositories.

The Python backend's stub is built per Python minor version and links ``libpython3.X.so.1.0`` by
name, so the dynamic loader takes the first one it finds (often the system Python's). When the
running interpreter is another CPython build of the same minor version, the stub then runs that
other build's ``libpython`` against this interpreter's standard library and fails in odd ways
(``'_thread.RLock' object has no attribute '_recursion_count'``). The robust way: put the running
interpreter's own ``LIBDIR`` (``sysconfig``) first on ``LD_LIBRARY_PATH``, and refuse, with the
reason, an interpreter that has no shared ``libpython`` (built without ``--enable-shared``).
"""

from __future__ import annotations

import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edge_se.bundle import owned_tempdir
from edge_se.errors import MissingDependencyError


def pytriton_root() -> Path:
    """pytriton's ``tritonserver`` folder (bin/, backends/, python_backend_stubs/)."""
    try:
        import pytriton
    except ImportError:
        raise MissingDependencyError("a local Triton server needs nvidia-pytriton (it ships tritonserver): "
                                     "pip install nvidia-pytriton") from None
    root = Path(pytriton.__file__).parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise MissingDependencyError(f"nvidia-pytriton at {root.parent} has no tritonserver binary; reinstall it")
    return root


def python_libdir() -> Path:
    """The folder holding the running interpreter's shared ``libpython`` (checked to exist)."""
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    name = sysconfig.get_config_var("INSTSONAME") or f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so.1.0"
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not (libdir / name).is_file():
        raise MissingDependencyError(
            f"Triton's Python backend needs a shared libpython, and {sys.executable} has none ({libdir / name} "
            "missing: built without --enable-shared); use a Python built with it (Debian's, or pyenv with "
            "PYTHON_CONFIGURE_OPTS=--enable-shared)")
    return libdir


def server_env(extra_pythonpath: list[str] | None = None) -> dict[str, str]:
    """Environment for ``tritonserver``: this interpreter's libpython first, its packages importable."""
    root = pytriton_root()
    libs = root.parent.parent / "nvidia_pytriton.libs"  # the stub's own CUDA runtime etc. (auditwheel)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(python_libdir()), str(libs), *filter(None, [env.get("LD_LIBRARY_PATH")])])
    # The stub's embedded Python finds its prefix from the ``python3`` on PATH (as pytriton does it)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    paths = [*(extra_pythonpath or []), *site.getsitepackages()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if Path(p).is_dir()))
    return env


def backend_dir(dest: Path) -> Path:
    """A backend folder with the Python backend and the stub for this interpreter's version."""
    root = pytriton_root()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = ", ".join(sorted(p.name for p in (root / "python_backend_stubs").iterdir()))
        raise MissingDependencyError(f"nvidia-pytriton has no Python-backend stub for Python {version} (it has: "
                                     f"{have}); run with one of those")
    shutil.copytree(root / "backends" / "python", dest / "python")
    shutil.copy2(stub, dest / "python" / stub.name)
    return dest


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalTriton:
    """A running server: its URLs and log file."""

    def __init__(self, process: subprocess.Popen, http_port: int, grpc_port: int, metrics_port: int, log: Path):
        self.process, self.log = process, log
        self.http_url, self.grpc_url = f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.log_text = ""  #: the whole log, once the server has stopped

    def log_text_now(self) -> str:
        """The log as written so far (the server may still be running)."""
        return self.log.read_text(errors="replace") if self.log.is_file() else self.log_text

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


@contextmanager
def local_triton(repository: str | os.PathLike[str], timeout: float = 120.0,
                 extra_pythonpath: list[str] | None = None, extra_args: tuple[str, ...] = (),
                 log_verbose: int = 0) -> Iterator[LocalTriton]:
    """Start ``tritonserver`` on loopback serving ``repository``; stop it on exit.

    Raises :class:`RuntimeError` with the log's tail when the server exits or is not ready in time.
    """
    with owned_tempdir("edge-se-triton-") as work:
        ports = [free_port() for _ in range(3)]
        log = work / "tritonserver.log"
        cmd = [str(pytriton_root() / "bin" / "tritonserver"), "--model-repository", str(Path(repository).resolve()),
               "--backend-directory", str(backend_dir(work / "backends")),
               "--http-address", "127.0.0.1", "--http-port", str(ports[0]),
               "--grpc-address", "127.0.0.1", "--grpc-port", str(ports[1]),
               "--metrics-address", "127.0.0.1", "--metrics-port", str(ports[2]), "--allow-gpu-metrics", "false",
               "--log-verbose", str(log_verbose), "--pinned-memory-pool-byte-size", "0", "--cuda-memory-pool-byte-size", "0:0",
               *extra_args]
        with open(log, "wb") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=server_env(extra_pythonpath),
                                       start_new_session=True)
        server = LocalTriton(process, *ports, log=log)
        try:
            deadline = time.monotonic() + timeout
            while not server.ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")
                    errors = [line for line in text.splitlines() if line.startswith("E") or "rror" in line]
                    tail = "\n".join(errors[-20:]) or text[-3000:]
                    raise RuntimeError(f"tritonserver {'exited' if process.poll() is not None else 'not ready'}; "
                                       f"log tail:\n{tail}")
                time.sleep(0.5)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            server.log_text = log.read_text(errors="replace")
