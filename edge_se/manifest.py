"""The manifest's shared vocabulary: artifact formats and the precision decision, one spelling each.

Stages that write an artifact and stages that read one import these names from here instead of
spelling strings of their own (a writer and a reader that spelled one format two ways left the
calibration cache and the engines invisible to the stages after them). The typed records
(:class:`ArtifactRecord`, :class:`ModelRecord`, :class:`PrecisionDecision`) are read here once,
with a one-line error naming any malformed field. Standard library only (and ``edge_se.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from edge_se.errors import BundleError

ONNX = "onnx"
TORCHSCRIPT = "torchscript"
#: torch.export ``ExportedProgram`` (``model.pt2``)
TORCH_EXPORT = "torch-export"
#: AOTInductor package (``model.aoti.pt2``): compiled native code for one CPU architecture
AOTI_PACKAGE = "aoti-package"
#: ExecuTorch program with the XNNPACK delegate (``model.pte``)
EXECUTORCH = "executorch"
TENSORRT_ENGINE = "tensorrt-engine"
TENSORRT_CALIBRATION_CACHE = "tensorrt-calibration-cache"
#: every artifact ``format`` a manifest may hold (stages spell none of them themselves: a test checks)
ARTIFACT_FORMATS = (ONNX, TORCHSCRIPT, TORCH_EXPORT, AOTI_PACKAGE, EXECUTORCH, TENSORRT_ENGINE, TENSORRT_CALIBRATION_CACHE)
#: the TensorRT-ready Q/DQ file whose precision decision TensorRT builds honour
TRT_QDQ_ARTIFACT = "model.int8.trt.onnx"
#: ``model.source`` of a bundle made from an ONNX file (no PyTorch model: ONNX Runtime FP32 is the reference)
ONNX_SOURCE = "onnx"
#: the imported ONNX file as given, kept in the bundle as that reference
ONNX_REFERENCE_FILE = "reference.onnx"


@dataclass(frozen=True)
class FileEntry:
    """One file of an artifact: its path inside the bundle, sha256 and size."""

    path: str
    sha256: str
    bytes: int | None = None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model file: name, shape (``"batch"`` or another name for a dynamic
    axis) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class PrecisionDecision:
    """What a reduced-precision file keeps in float (the quantize stage's decision) and how much is INT8."""

    policy: str | None
    kept_blocks: tuple[str, ...]
    kept_nodes: tuple[str, ...]
    int8_mac_share: float | None
    budget_met: bool | None
    budget_misses: tuple[str, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact's manifest record, read once and typed; ``raw`` keeps the stage-specific rest."""

    name: str
    path: str
    format: str
    precision: str
    stage: str | None
    backend: str | None
    files: tuple[FileEntry, ...]
    decision: PrecisionDecision | None
    #: the precision policy a quantize stage applied (``all``, ``keep-gates``, ``auto``, ...)
    policy: str | None = None
    #: the model's inputs and outputs (``None``: the record has none, e.g. a calibration cache or
    #: an engine, whose are its ONNX's: :attr:`onnx_artifact`)
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    #: the ONNX artifact a calibration cache was written for, or an engine was built from
    for_onnx: str | None = None
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def input_name(self) -> str | None:
        return self.inputs[0].name if self.inputs else None


@dataclass(frozen=True)
class ModelRecord:
    """The manifest's ``model`` table: what was exported and what its reference is."""

    spec: str
    source: str | None
    input_shape: tuple[int, ...]
    dynamic_batch: bool
    seed: int
    options: Mapping[str, Any]
    reference_backend: str  # "pytorch", or "onnxruntime" for a bundle imported from ONNX


def _need(record: Mapping[str, Any], key: str, kind: type, field_name: str, where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind):
        raise BundleError(f"{where}: {field_name}.{key} must be a {kind.__name__}, found {value!r:.60}; re-create the bundle")
    return value


def precision_decision(record: Mapping[str, Any] | None, where: str = "manifest", field_name: str = "artifact"
                       ) -> PrecisionDecision | None:
    """The typed ``kept_in_float`` decision of an artifact record (None: the file has no decision)."""
    decision = (record or {}).get("kept_in_float")
    if decision is None:
        return None
    f = f"{field_name}.kept_in_float"
    if not isinstance(decision, dict):
        raise BundleError(f"{where}: {f} must be a table, found {decision!r:.60}; re-create the bundle")
    nodes = _need(decision, "kept_nodes", list, f, where)
    blocks = decision.get("kept_in_float", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and isinstance(b.get("name"), str) for b in blocks):
        raise BundleError(f"{where}: {f}.kept_in_float must be a list of blocks with a name; re-create the bundle")
    share = decision.get("int8_mac_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
        raise BundleError(f"{where}: {f}.int8_mac_share must be a fraction 0..1, found {share!r:.40}")
    met = decision.get("budget_met")
    misses = decision.get("budget_misses") or []
    budget = decision.get("budget") or {}
    if not isinstance(misses, list) or not isinstance(budget, dict):
        raise BundleError(f"{where}: {f}.budget_misses must be a list and {f}.budget a table; re-create the bundle")
    return PrecisionDecision(policy=decision.get("policy") if isinstance(decision.get("policy"), str) else None,
                             kept_blocks=tuple(b["name"] for b in blocks), kept_nodes=tuple(str(n) for n in nodes),
                             int8_mac_share=None if share is None else float(share),
                             budget_met=met if isinstance(met, bool) else None,
                             budget_misses=tuple(str(m) for m in misses), budget=dict(budget))


def _tensor_specs(record: Mapping[str, Any], key: str, f: str, where: str) -> tuple[TensorSpec, ...] | None:
    specs = record.get(key)
    if specs is None:
        return None
    ok = isinstance(specs, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("dtype"), str)
        and isinstance(t.get("shape"), list)
        and all(isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool)) for d in t["shape"])
        for t in specs)
    if not ok:
        raise BundleError(f"{where}: {f}.{key} must be a list of tensors with name, shape and dtype, found "
                          f"{specs!r:.80}; re-create the bundle")
    return tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in specs)


def artifact_record(name: str, record: Any, where: str = "manifest") -> ArtifactRecord:
    """Read one ``artifacts[name]`` record; a one-line :class:`BundleError` names a malformed field."""
    f = f"artifacts[{name!r}]"
    if not isinstance(record, dict):
        raise BundleError(f"{where}: {f} must be a table, found {type(record).__name__}; re-create the bundle")
    for key in ("path", "format", "precision"):
        _need(record, key, str, f, where)
    files = _need(record, "files", list, f, where)
    if not files:
        raise BundleError(f"{where}: {f}.files is empty; re-create the bundle")
    entries = []
    for i, e in enumerate(files):
        if not isinstance(e, dict) or not isinstance(e.get("path"), str) or not isinstance(e.get("sha256"), str):
            raise BundleError(f"{where}: {f}.files[{i}] must be a table with path and sha256, found {e!r:.80}; "
                                "re-create the bundle")
        size = e.get("bytes")
        entries.append(FileEntry(e["path"], e["sha256"], size if isinstance(size, int) else None))
    if record["path"] not in [e.path for e in entries]:
        raise BundleError(f"{where}: {f}.path {record['path']!r} is not among its files; re-create the bundle")
    if record["format"] not in ARTIFACT_FORMATS:
        raise BundleError(f"{where}: {f}.format {record['format']!r} is not one of {', '.join(ARTIFACT_FORMATS)} "
                            "(a manifest from another edge-se version?); re-create the bundle")
    stage, backend, policy = record.get("stage"), record.get("backend"), record.get("policy")
    plan = record.get("plan")
    for_onnx = record.get("for_onnx") or (plan.get("onnx_artifact") if isinstance(plan, dict) else None)
    if for_onnx is not None and not isinstance(for_onnx, str):
        raise BundleError(f"{where}: {f} names its ONNX artifact as {for_onnx!r:.40}, not a name; re-create it")
    return ArtifactRecord(name=name, path=record["path"], format=record["format"], precision=record["precision"],
                          stage=stage if isinstance(stage, str) else None,
                          backend=backend if isinstance(backend, str) else None, files=tuple(entries),
                          decision=precision_decision(record, where, f),
                          policy=policy if isinstance(policy, str) else None,
                          inputs=_tensor_specs(record, "inputs", f, where),
                          outputs=_tensor_specs(record, "outputs", f, where), for_onnx=for_onnx, raw=record)


def model_record(model: Any, where: str = "manifest") -> ModelRecord:
    """Read the ``model`` table; a one-line :class:`BundleError` names a malformed field."""
    if not isinstance(model, dict):
        raise BundleError(f"{where} has no 'model' table; re-create the bundle with 'edge-se export'")
    spec = _need(model, "spec", str, "model", where)
    shape = model.get("input_shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                            for d in shape):
        raise BundleError(f"{where}: model.input_shape must be a list of positive integers, found {shape!r:.60}")
    dynamic = model.get("dynamic_batch", False)
    if not isinstance(dynamic, bool):
        raise BundleError(f"{where}: model.dynamic_batch must be true or false, found {dynamic!r:.20}")
    seed = model.get("seed", 0)
    options = model.get("options") or {}
    if not isinstance(options, dict):
        raise BundleError(f"{where}: model.options must be a table, found {options!r:.60}")
    ref = model.get("reference") or {}
    backend = ref.get("backend") if isinstance(ref, dict) else None
    return ModelRecord(spec=spec, source=model.get("source") if isinstance(model.get("source"), str) else None,
                       input_shape=tuple(shape), dynamic_batch=dynamic,
                       seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0, options=dict(options),
                       reference_backend=backend if backend == "onnxruntime" else "pytorch")


#: the manifest's top-level table holding a measured backend choice (``edge_se.runtime.choice``)
RUNTIME_CHOICE = "runtime_choice"
