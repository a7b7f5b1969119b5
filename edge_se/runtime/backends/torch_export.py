"""torch.export (``pt2``) and AOTInductor (``aoti``) backends; both need torch, both on request.

``pt2`` runs an ``ExportedProgram`` after :mod:`~edge_se.runtime.backends.pt2_archive` has read
the archive as data. ``aoti`` loads an AOTInductor package: native code compiled for one CPU
architecture, vector ISA and torch build, so the package is checked against this machine and
this torch before it is loaded, and AOTInductor's own input checks are switched on
(``AOTI_RUNTIME_CHECK_INPUTS=1``; without it a batch above the compiled range runs unchecked).
An AOTI package is code: load it only from a trusted source (the runtime checks its sha256).
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from edge_se.errors import BundleError, first_line
from edge_se.runtime.backends.base import TensorSpec
from edge_se.runtime.backends.pt2_archive import check_exported_program, package_info
from edge_se.runtime.backends.torch_module import TorchModuleRunner


def load_exported_program(path: str | Path):
    """``torch.export.load(path)`` after :func:`check_exported_program` has read the archive as data."""
    import torch

    check_exported_program(Path(path))
    try:
        return torch.export.load(str(path))
    except Exception as e:  # torch's deserializer raises many types
        raise BundleError(f"torch.export.load cannot load {path}: {type(e).__name__}: {first_line(e, 300)}") from None


class ExportedProgramRunner(TorchModuleRunner):
    """Runs ``torch.export.load(path).module()`` (checked first: see pt2_archive)."""

    name = "pt2"

    def _load(self):
        return load_exported_program(self.path).module()


class AotiRunner(TorchModuleRunner):
    """Runs an AOTInductor package; refuses one built for another machine, ISA or torch."""

    name = "aoti"
    serial = True  # one AOTIModelContainer runner per package: calls are serialised

    def __init__(self, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int | None = None, built: Mapping[str, Any] | None = None):
        self.built = dict(built or {})
        super().__init__(path, inputs, outputs, threads)

    def _load(self):
        torch = self._torch
        info = package_info(self.path)
        where = f"AOTInductor package {self.path}"
        machine = info.get("machine")
        if machine and machine != platform.machine():
            raise BundleError(f"{where} was compiled for {machine}, this machine is {platform.machine()}; "
                              "re-export it here with --formats aoti")
        isa = (info.get("cpu_isa") or "").split()
        if isa:
            from torch._inductor.cpu_vec_isa import valid_vec_isa_list

            have = {str(v).lower() for v in valid_vec_isa_list()}
            if isa[0].lower() not in have:
                raise BundleError(f"{where} was compiled for the {isa[0]} vector ISA, which this CPU lacks "
                                  f"(it has: {', '.join(sorted(have)) or 'none'}); re-export it here with --formats aoti")
        built_torch = self.built.get("torch")
        if built_torch and built_torch != torch.__version__:
            raise BundleError(f"{where} was compiled with torch {built_torch}, this is torch {torch.__version__}; "
                              "an AOTInductor package runs only on the torch that built it: re-export with --formats aoti")
        os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime is found"
        try:
            return torch._inductor.aoti_load_package(str(self.path))
        except Exception as e:  # the loader raises RuntimeError and others
            raise BundleError(f"cannot load {where}: {type(e).__name__}: {first_line(e, 300)}") from None

    def describe(self) -> dict:
        return {**super().describe(), "compiled_for": {k: self.built.get(k) for k in ("machine", "cpu_isa", "torch")}}
