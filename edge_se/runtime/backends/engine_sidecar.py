"""The sidecar manifest of an engine: ``<name>.engine.json`` beside the plan file.

The plan file stays exactly what TensorRT wrote (a header prefixed to it breaks trtexec's
"magic tag" check). The sidecar records what the engine is bound to: TensorRT, CUDA and driver
versions, GPU name and compute capability, DLA core, and the hashes of what it was built from.
``check_sidecar`` compares it with the machine that wants to load the engine and fails with what
differs and the command that rebuilds it, before TensorRT's own serialization errors can.

Standard library only: the runtime imports it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from edge_se.errors import EdgeSEError, InputError

FORMAT = "edge-se-engine"
FORMAT_VERSION = 1

FIELDS = (
    "tensorrt_version", "tensorrt_flavor", "cuda_version", "driver_version", "gpu_name",
    "compute_capability", "dla_core", "target", "precision", "precision_path", "policy",
    "policy_hash", "calibration_sha256", "preprocessing_sha256", "onnx_artifact", "onnx_sha256",
    "engine_sha256", "recipe", "recipe_sha256", "rebuild_command", "built", "built_by",
)


class EngineMismatchError(EdgeSEError):
    """An engine was built for another TensorRT, GPU or model than the one at hand."""


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def policy_hash(policy: str, float_nodes: list[str] | tuple[str, ...] = ()) -> str:
    """A short hash of the precision policy and the nodes it keeps in float."""
    text = json.dumps({"policy": policy, "float_nodes": sorted(float_nodes)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def preprocessing_hash(preprocessing: Mapping[str, Any] | None) -> str | None:
    if not preprocessing:
        return None
    return hashlib.sha256(json.dumps(dict(preprocessing), sort_keys=True).encode()).hexdigest()[:16]


def write_sidecar(engine: str | Path, record: Mapping[str, Any], root: str | Path | None = None) -> Path:
    """Write the sidecar for ``engine`` (unknown keys refused; missing ones recorded as null).

    ``root``: the folder the sidecar must stay inside (symlinks resolved), e.g. the bundle.
    """
    from edge_se.bundle import atomic_write_json, utc_now
    from edge_se.trust import inside_root, safe_name

    safe_name(Path(engine).name, "engine file name", "engine sidecar")

    extra = set(record) - set(FIELDS)
    if extra:
        raise InputError(f"engine sidecar: unknown fields {sorted(extra)}")
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **{k: record.get(k) for k in FIELDS}}
    data["built"] = data["built"] or utc_now()
    path = sidecar_path(engine)
    if root is not None:
        inside_root(root, path, "engine sidecar")
    atomic_write_json(path, data)
    return path


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine)
    if not path.is_file():
        raise EngineMismatchError(
            f"{engine} has no sidecar {path.name}, so edge-se cannot tell which TensorRT and GPU it was "
            "built for; rebuild it on this device with 'edge-se build BUNDLE --recipe RECIPE' "
            "(or the bundle's build_<target>.sh)"
        )
    from edge_se.bundle import read_json_document

    return read_json_document(path, FORMAT, EngineMismatchError, "an edge-se engine sidecar", "rebuild the engine")


@dataclass(frozen=True)
class Mismatch:
    field: str
    engine: Any
    here: Any
    fatal: bool


def compare(sidecar: Mapping[str, Any], here: Mapping[str, Any]) -> list[Mismatch]:
    """What differs between the engine's sidecar and this machine (``here``: same field names).

    Fatal: TensorRT version (plans are not portable across versions), compute capability, GPU
    name, DLA core availability, engine bytes. Not fatal: CUDA runtime and driver versions (a
    newer driver runs older engines). Fields unknown on either side are not compared.
    """
    out = []
    for key, fatal in (("tensorrt_version", True), ("tensorrt_flavor", True), ("compute_capability", True),
                       ("gpu_name", True), ("engine_sha256", True), ("cuda_version", False),
                       ("driver_version", False)):
        a, b = sidecar.get(key), here.get(key)
        if a in (None, "") or b in (None, ""):
            continue
        if key in ("tensorrt_version", "cuda_version", "driver_version"):
            # "10.3.0" (trtexec's log) and "10.3.0.30" (the bindings) name the same release.
            pa, pb = str(a).split("."), str(b).split(".")
            n = min(len(pa), len(pb), 3)
            if pa[:n] == pb[:n]:
                continue
        if key == "compute_capability" and str(b).strip() in [c.strip() for c in str(a).split(",")]:
            continue  # a TensorRT-for-RTX build for several architectures ("8.6,8.9") runs on each
        if str(a) != str(b):
            out.append(Mismatch(key, a, b, fatal))
    dla = sidecar.get("dla_core")
    cores = here.get("dla_cores")
    if dla is not None and cores is not None and dla >= cores:
        out.append(Mismatch("dla_core", dla, f"{cores} DLA cores", True))
    return out


def check_sidecar(engine: str | Path, here: Mapping[str, Any]) -> dict[str, Any]:
    """Raise :class:`EngineMismatchError` when the engine cannot run here; return the sidecar.

    ``here`` holds this machine's values (``tensorrt_version``, ``compute_capability``,
    ``gpu_name``, ``cuda_version``, ``driver_version``, ``dla_cores``) and, where known, the
    ``engine_sha256`` of the file about to be loaded.
    """
    data = read_sidecar(engine)
    fatal = [m for m in compare(data, here) if m.fatal]
    if fatal:
        diffs = "; ".join(f"{m.field}: engine {m.engine}, here {m.here}" for m in fatal)
        rebuild = data.get("rebuild_command") or "edge-se build BUNDLE --recipe RECIPE"
        raise EngineMismatchError(
            f"{Path(engine).name} was built for another machine ({diffs}); engines must be built on the "
            f"device that runs them: rebuild here with '{rebuild}'"
        )
    return data
