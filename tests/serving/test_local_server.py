"""The local Triton launcher's environment rules (the live server runs in scripts/ci_triton.sh)."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig

import pytest

from edge_se.errors import MissingDependencyError
from edge_se.serving import local_server


def test_libdir_is_the_running_interpreters_own_shared_libpython():
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        pytest.skip(f"{sys.executable} has no shared libpython")
    libdir = local_server.python_libdir()
    assert (libdir / sysconfig.get_config_var("INSTSONAME")).is_file()
    assert libdir.resolve() == __import__("pathlib").Path(sysconfig.get_config_var("LIBDIR")).resolve()


def test_interpreter_without_shared_libpython_is_refused_with_the_reason(monkeypatch):
    real = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var", lambda k: 0 if k == "Py_ENABLE_SHARED" else real(k))
    with pytest.raises(MissingDependencyError, match="--enable-shared"):
        local_server.python_libdir()


@pytest.mark.skipif(importlib.util.find_spec("pytriton") is not None, reason="pytriton is installed here")
def test_missing_pytriton_names_the_package():
    with pytest.raises(MissingDependencyError, match="pip install nvidia-pytriton"):
        local_server.pytriton_root()
