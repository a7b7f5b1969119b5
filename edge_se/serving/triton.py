"""Triton model repositories from a bundle: ``REPO/<name>/config.pbtxt`` + ``REPO/<name>/1/<file>``.

Everything in a config comes from the manifest (tensor names, dtypes, dims, batch range, labels)
and the options; the config is built as Triton's own ``ModelConfig`` protobuf message
(``tritonclient``'s ``model_config_pb2``), so a field Triton does not know cannot be written, and
the text is parsed back with ``google.protobuf.text_format`` before it is published.

Serving kinds:

* ``native``: Triton's backend for the file: ``onnxruntime_onnx`` (ONNX artifacts) or
  ``pytorch_libtorch`` (``model.ts``, legacy; Triton names its tensors ``INPUT__0``/``OUTPUT__0``);
* ``python``: Triton's Python backend running the artifact with ``edge_se.runtime`` (the same
  runtime, preprocessing and sha256 checks as ``edge-se predict``); the bundle's manifest and the
  artifact's files are copied under ``1/bundle``. The server's Python must import ``edge_se``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_se import manifest as mf
from edge_se.bundle import MANIFEST_NAME, Bundle, atomic_write_text
from edge_se.errors import BundleError, InputError, MissingDependencyError
from edge_se.export.outpath import check_out_path
from edge_se.serving.outdir import copy_verified, main_file_entry, staged_output

#: manifest dtype -> Triton data type
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int8": "TYPE_INT8",
                 "uint8": "TYPE_UINT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}
#: model and tensor names Triton (and a model repository folder) take without quoting trouble
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
SERVE_KINDS = ("native", "python")
#: artifact formats Triton has a backend of its own for
NATIVE = (mf.ONNX, mf.TORCHSCRIPT, mf.TENSORRT_ENGINE)
WARMUP_KINDS = ("zero", "random", "none")
DEFAULT_MAX_BATCH = 8
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")
PREPROCESS_MODEL = Path(__file__).with_name("triton_preprocess_model.py")
#: the ensemble's input: one encoded image (PNG, JPEG, ...) per batch row
IMAGE_INPUT = "IMAGE"
#: Python-backend parameters read by ``triton_python_model.py``
PARAM_ARTIFACT, PARAM_BACKEND = "edge_se_artifact", "edge_se_backend"


@dataclass(frozen=True)
class TritonOptions:
    """What ``edge-se export-triton`` was asked for (see its ``--help``)."""

    name: str | None = None
    artifact: str = "model.onnx"
    serve: str = "native"
    max_batch: int | None = None
    instances: int = 1
    kind: str = "cpu"
    max_queue_delay_us: int = 100
    warmup: str = "zero"
    runtime_backend: str = "onnxruntime"
    #: the serving GPU's compute capability; an engine's sidecar must name it
    compute_capability: str | None = None
    #: also write ``<name>_preprocess`` (Python backend: encoded image bytes -> the bundle's
    #: preprocessing) and ``<name>_ensemble`` (preprocess -> model) for clients that send raw images
    ensemble: bool = False


@dataclass(frozen=True)
class TritonRepository:
    """What was written: the repository, the model's name and folder, the config text."""

    root: Path
    name: str
    model_dir: Path
    config_text: str
    max_batch_size: int
    #: the ensemble clients send encoded images to (``ensemble=True``), else None
    ensemble_name: str | None = None


def _model_config_pb2() -> Any:
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise MissingDependencyError("Triton configs are built with Triton's own schema from tritonclient, which is "
                                     "not installed: pip install 'edge-se[serving]'") from None
    return model_config_pb2


def _check_name(what: str, name: str, fix: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"{what} {name!r} is not a valid Triton name (letters, digits, '_', '.', '-'; at most 128, "
                         f"not starting with '.' or '-'); {fix}")
    return name


def _dims(spec: dict[str, Any], batched: bool, where: str) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not shape:
        raise BundleError(f"{where}: shape missing or empty in the manifest; re-export the bundle")
    dims = []
    for i, d in enumerate(shape):
        if i == 0 and batched:
            continue
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            raise InputError(
                f"{where}: dimension {i} is {d!r}, but Triton serves the batch as the only variable dimension "
                "here (a fixed-size input elsewhere); re-export with a fixed --input-shape")
        dims.append(d)
    return dims


def _tensors(record: dict[str, Any], key: str, batched: bool, libtorch: bool, artifact: str) -> list[dict[str, Any]]:
    specs = record.get(key)
    if not isinstance(specs, list) or not specs:
        raise BundleError(f"artifact {artifact}: manifest has no {key}; re-export the bundle")
    out = []
    for i, spec in enumerate(specs):
        where = f"artifact {artifact} {key[:-1]} {spec.get('name')!r}"
        dtype = TRITON_DTYPES.get(spec.get("dtype"))
        if dtype is None:
            raise BundleError(f"{where}: dtype {spec.get('dtype')!r} has no Triton type (known: "
                              f"{', '.join(TRITON_DTYPES)})")
        name = f"{'INPUT' if key == 'inputs' else 'OUTPUT'}__{i}" if libtorch else _check_name(
            f"{where}: tensor name", spec.get("name"), "re-export with --input-names/--output-names Triton accepts")
        out.append({"name": name, "data_type": dtype, "dims": _dims(spec, batched, where)})
    return out


def _engine_checked(bundle: Bundle, record: dict[str, Any], opts: TritonOptions) -> dict[str, Any]:
    """An engine may be served natively on a GPU it was built for; returns the record with its tensor specs."""
    from edge_se.tensorrt.sidecar import read_sidecar

    if opts.kind != "gpu":
        raise InputError(f"artifact {opts.artifact} is a TensorRT engine: Triton runs tensorrt_plan models on GPU "
                         "instances only; pass --kind gpu")
    side = read_sidecar(bundle.verify(opts.artifact))
    built_for = [c.strip() for c in str(side.get("compute_capability") or "").split(",") if c.strip()]
    if opts.compute_capability and opts.compute_capability not in built_for:
        raise InputError(f"artifact {opts.artifact} was built for compute capability {','.join(built_for) or 'unknown'}"
                         f" (its sidecar), not {opts.compute_capability}; rebuild it with 'edge-se build' on the "
                         "serving GPU")
    onnx = bundle.record(opts.artifact).for_onnx
    if onnx is None or onnx not in bundle.artifacts:
        raise BundleError(f"artifact {opts.artifact}: plan.onnx_artifact {onnx!r} names no artifact of the bundle; "
                          "rebuild the engine")
    built_from = bundle.artifact(onnx)  # its tensor specs are the engine's (checked by _tensors)
    return {**record, "inputs": built_from.get("inputs"), "outputs": built_from.get("outputs")}


def engine_batch_top(record: dict[str, Any]) -> int:
    """The largest batch every optimization profile of an engine admits."""
    profiles = (record.get("plan") or {}).get("profiles")
    try:
        return min(int(p["max"][0]) for p in profiles)
    except (TypeError, KeyError, IndexError, ValueError):
        raise BundleError(f"artifact {record.get('path')!r}: plan.profiles missing or malformed; rebuild the engine") \
            from None


def _batching(record: dict[str, Any], bundle: Bundle, opts: TritonOptions, top: int | None = None) -> int:
    inputs = record.get("inputs") or []
    dynamic = bool(inputs) and all(isinstance(s.get("shape"), list) and s["shape"] and isinstance(s["shape"][0], str)
                                   for s in inputs)
    if not dynamic:
        if opts.max_batch is not None:
            raise InputError(f"--max-batch {opts.max_batch}: artifact {opts.artifact} has a static batch, so Triton "
                             "serves it with max_batch_size 0; drop --max-batch or re-export with a dynamic batch")
        return 0
    top = top if top is not None else _batch_top(record)
    max_batch = (top or DEFAULT_MAX_BATCH) if opts.max_batch is None else opts.max_batch
    if max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, got {max_batch}")
    if top is not None and max_batch > top:
        raise InputError(f"--max-batch {max_batch} is above artifact {opts.artifact}'s batch range (1..{top}); "
                         f"pass --max-batch {top} or less, or re-export with a larger --max-batch")
    return max_batch


def _batch_top(record: dict[str, Any]) -> int | None:
    """The largest batch an artifact was built for (torch.export's range), None when open (ONNX)."""
    batch_range = record.get("batch_range")
    if batch_range is None:
        return None
    if (not isinstance(batch_range, list) or len(batch_range) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in batch_range)):
        raise BundleError(f"artifact {record.get('path')!r}: batch_range {batch_range!r} is not [min, max]; "
                          "re-export the bundle")
    return batch_range[1]


def model_config(bundle: Bundle, opts: TritonOptions, name: str) -> tuple[dict[str, Any], int]:
    """The config as a dict in protobuf JSON field names, and its ``max_batch_size``."""
    record = bundle.artifact(opts.artifact)
    fmt = bundle.record(opts.artifact).format
    if opts.serve == "native" and fmt not in NATIVE:
        raise InputError(f"artifact {opts.artifact} is format {fmt!r}: Triton's native backends serve ONNX "
                         "(onnxruntime), TorchScript (pytorch_libtorch) and TensorRT engines (tensorrt_plan); use "
                         "--serve python to run it with edge_se.runtime in Triton's Python backend, or choose "
                         "another --artifact")
    specs = record
    if fmt == mf.TENSORRT_ENGINE:
        specs = _engine_checked(bundle, record, opts)
    max_batch = _batching(specs, bundle, opts, top=engine_batch_top(record) if fmt == mf.TENSORRT_ENGINE else None)
    batched = max_batch > 0
    libtorch = opts.serve == "native" and fmt == mf.TORCHSCRIPT
    config: dict[str, Any] = {
        "name": name,
        "max_batch_size": max_batch,
        "input": _tensors(specs, "inputs", batched, libtorch, opts.artifact),
        "output": _tensors(specs, "outputs", batched, libtorch, opts.artifact),
        "instance_group": [{"count": opts.instances, "kind": "KIND_GPU" if opts.kind == "gpu" else "KIND_CPU"}],
    }
    if opts.serve == "python":
        config["backend"] = "python"
        config["parameters"] = {PARAM_ARTIFACT: {"string_value": opts.artifact},
                                PARAM_BACKEND: {"string_value": opts.runtime_backend}}
    elif libtorch:
        config.update(platform="pytorch_libtorch", default_model_filename="model.pt")
    elif fmt == mf.TENSORRT_ENGINE:
        config.update(platform="tensorrt_plan", backend="tensorrt", default_model_filename="model.plan")
    else:
        config.update(platform="onnxruntime_onnx", backend="onnxruntime", default_model_filename="model.onnx")
    if batched:
        preferred = [b for b in (2, 4, 8, 16, 32, 64) if b < max_batch] + [max_batch]
        config["dynamic_batching"] = {"preferred_batch_size": [b for b in preferred if b > 1] or [max_batch],
                                      "max_queue_delay_microseconds": opts.max_queue_delay_us}
    if bundle.manifest.get("labels"):
        config["output"][0]["label_filename"] = "labels.txt"
    if opts.warmup != "none":
        data = {"zero_data": True} if opts.warmup == "zero" else {"random_data": True}
        config["model_warmup"] = [{
            "name": f"{opts.warmup}_batch1", "batch_size": 1,
            "inputs": {t["name"]: {"data_type": t["data_type"], "dims": t["dims"], **data} for t in config["input"]},
        }]
    return config, max_batch


def config_text(config: dict[str, Any]) -> str:
    """``config.pbtxt`` text for ``config``, checked against Triton's ``ModelConfig`` schema both ways."""
    from google.protobuf import json_format, text_format

    pb2 = _model_config_pb2()
    try:
        message = json_format.ParseDict(config, pb2.ModelConfig())
    except json_format.ParseError as e:  # a field or value Triton's schema does not have: our bug
        raise RuntimeError(f"generated Triton config does not fit Triton's schema: {e}") from None
    text = text_format.MessageToString(message)
    reparsed = text_format.Parse(text, pb2.ModelConfig())
    if reparsed != message:
        raise RuntimeError("config.pbtxt does not parse back to the same ModelConfig")
    return text


def _options_checked(opts: TritonOptions) -> None:
    if opts.serve not in SERVE_KINDS:
        raise InputError(f"--serve {opts.serve!r}: expected one of {', '.join(SERVE_KINDS)}")
    if opts.kind not in ("cpu", "gpu"):
        raise InputError(f"--kind {opts.kind!r}: expected cpu or gpu")
    if opts.warmup not in WARMUP_KINDS:
        raise InputError(f"--warmup {opts.warmup!r}: expected one of {', '.join(WARMUP_KINDS)}")
    from edge_se.runtime.source import BACKENDS

    if opts.runtime_backend not in BACKENDS:
        raise InputError(f"--runtime-backend {opts.runtime_backend!r}: expected one of {', '.join(BACKENDS)}")
    if opts.instances < 1:
        raise InputError(f"--instances must be at least 1, got {opts.instances}")
    if opts.max_queue_delay_us < 0:
        raise InputError(f"--max-queue-delay-us must be 0 or more, got {opts.max_queue_delay_us}")
    if opts.kind == "gpu" and opts.serve == "python":
        raise InputError("--kind gpu with --serve python: the Python backend runs edge_se.runtime in CPU instances; "
                         "use --kind cpu (the runtime still picks a GPU backend when the artifact is an engine)")


def default_name(bundle: Bundle) -> str:
    """The model's name in the repository: the bundle's model spec made Triton-safe."""
    spec = str((bundle.manifest.get("model") or {}).get("spec") or bundle.root.name)
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", spec.rsplit("/", 1)[-1]).strip("._-") or "model"
    return name[:128]


def ensemble_configs(bundle: Bundle, config: dict[str, Any], opts: TritonOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``<name>_preprocess`` and ``<name>_ensemble`` configs around the model ``config``."""
    max_batch = config["max_batch_size"]
    if max_batch == 0:
        raise InputError(f"--ensemble: artifact {opts.artifact} has a static batch; the ensemble batches encoded "
                         "images, so export a dynamic-batch bundle")
    if len(config["input"]) != 1:
        raise InputError(f"--ensemble: artifact {opts.artifact} has {len(config['input'])} inputs; the preprocessing "
                         "step feeds one image input")
    spec = bundle.preprocessing()
    model_in = config["input"][0]
    expect = [spec.channels, *spec.crop] if spec.layout == "NCHW" else [*spec.crop, spec.channels]
    if model_in["dims"] != expect or model_in["data_type"] != TRITON_DTYPES[spec.dtype]:
        raise BundleError(f"--ensemble: artifact {opts.artifact} input {model_in['dims']} {model_in['data_type']} does "
                          f"not match the bundle's preprocessing ({expect}, {spec.dtype}); re-export the bundle")
    name = config["name"]
    for derived in (f"{name}_preprocess", f"{name}_ensemble"):
        _check_name("--ensemble: model name", derived, "choose a shorter --name")
    pre = {"name": f"{name}_preprocess", "backend": "python", "max_batch_size": max_batch,
           "input": [{"name": IMAGE_INPUT, "data_type": "TYPE_STRING", "dims": [1]}],
           "output": [{"name": model_in["name"], "data_type": model_in["data_type"], "dims": model_in["dims"]}],
           "instance_group": [{"count": opts.instances, "kind": "KIND_CPU"}]}
    outputs = [{k: v for k, v in o.items() if k != "label_filename"} for o in config["output"]]
    ens = {"name": f"{name}_ensemble", "platform": "ensemble", "max_batch_size": max_batch,
           "input": [{"name": IMAGE_INPUT, "data_type": "TYPE_STRING", "dims": [1]}], "output": outputs,
           "ensemble_scheduling": {"step": [
               {"model_name": pre["name"], "model_version": -1, "input_map": {IMAGE_INPUT: IMAGE_INPUT},
                "output_map": {model_in["name"]: "preprocessed"}},
               {"model_name": name, "model_version": -1, "input_map": {model_in["name"]: "preprocessed"},
                "output_map": {o["name"]: o["name"] for o in outputs}},
           ]}}
    return pre, ens


def export_triton(bundle_dir: str | Path, out: str | Path, opts: TritonOptions = TritonOptions(),
                  force: bool = False) -> TritonRepository:
    """Write a Triton model repository serving one artifact of a bundle (see the module docstring)."""
    _options_checked(opts)
    bundle = Bundle.open(bundle_dir)
    name = _check_name("--name", opts.name, "choose another --name") if opts.name else default_name(bundle)
    config, max_batch = model_config(bundle, opts, name)
    text = config_text(config)
    extra = ensemble_configs(bundle, config, opts) if opts.ensemble else ()
    extra_texts = [(c["name"], config_text(c)) for c in extra]
    record = bundle.artifact(opts.artifact)
    out = check_out_path(out)
    with staged_output(out, force, "triton-repository", bundle) as stage:
        model_dir = stage / name
        version = model_dir / "1"
        if opts.serve == "python":
            for entry in record["files"]:
                copy_verified(bundle, entry, version / "bundle" / entry["path"])
            if bundle.manifest.get("labels"):
                copy_verified(bundle, bundle.manifest["labels"], version / "bundle" / bundle.manifest["labels"]["path"])
            (version / "bundle" / MANIFEST_NAME).write_bytes((bundle.root / MANIFEST_NAME).read_bytes())
            atomic_write_text(version / "model.py", PYTHON_MODEL.read_text(encoding="utf-8"))
        else:
            if record.get("format") != mf.TENSORRT_ENGINE and len(record["files"]) > 1:  # an engine's sidecar stays behind
                raise InputError(f"artifact {opts.artifact} has {len(record['files'])} files; Triton's "
                                 f"{config['platform']} loads one file: use --serve python")
            copy_verified(bundle, main_file_entry(bundle, opts.artifact), version / config["default_model_filename"])
        if bundle.manifest.get("labels"):
            copy_verified(bundle, bundle.manifest["labels"], model_dir / "labels.txt")
        atomic_write_text(model_dir / "config.pbtxt", text)
        for model_name, model_text in extra_texts:
            (stage / model_name / "1").mkdir(parents=True)  # an ensemble needs its (empty) version folder too
            atomic_write_text(stage / model_name / "config.pbtxt", model_text)
        if extra_texts:
            pre = stage / extra_texts[0][0] / "1"
            atomic_write_text(pre / "model.py", PREPROCESS_MODEL.read_text(encoding="utf-8"))
            (pre / "bundle").mkdir()
            (pre / "bundle" / MANIFEST_NAME).write_bytes((bundle.root / MANIFEST_NAME).read_bytes())
    return TritonRepository(out, name, out / name, text, max_batch, extra_texts[1][0] if extra_texts else None)
