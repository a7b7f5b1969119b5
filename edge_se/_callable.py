"""Stage packages that are also the API call of the same name (``edge_se.export(...)``).

``edge_se.export``, ``edge_se.quantize`` and ``edge_se.validate`` are sub-packages; Python binds
the name to the package as soon as any of its modules is imported, which would hide an API
function of that name. Each of those packages therefore makes itself callable: calling it calls
the function in :mod:`edge_se.api`, so ``edge_se.export(...)`` works whatever was imported before.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _StageModule(types.ModuleType):
    """A package module whose call is :mod:`edge_se.api`'s function of the package's name."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from edge_se import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the already-imported package ``module_name`` (``edge_se.export``, ...) callable."""
    sys.modules[module_name].__class__ = _StageModule
