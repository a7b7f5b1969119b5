"""The engine sidecar (``<name>.engine.json``): written by the build stage, read by the runtime.

The format lives in :mod:`edge_se.runtime.backends.engine_sidecar` (the runtime loads engines and
imports nothing from the build side); the build side uses it from here.
"""

from edge_se.runtime.backends.engine_sidecar import (
    FIELDS,
    FORMAT,
    FORMAT_VERSION,
    EngineMismatchError,
    Mismatch,
    check_sidecar,
    compare,
    policy_hash,
    preprocessing_hash,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

__all__ = ["FIELDS", "FORMAT", "FORMAT_VERSION", "EngineMismatchError", "Mismatch", "check_sidecar", "compare",
           "policy_hash", "preprocessing_hash", "read_sidecar", "sidecar_path", "write_sidecar"]
