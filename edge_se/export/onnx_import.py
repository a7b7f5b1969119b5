"""ONNX model in: an ONNX file -> a validated bundle, with ONNX Runtime FP32 as the reference.

Many deployment engineers receive an ONNX file, not PyTorch code. ``edge-se export model.onnx``
checks the file (onnx.checker, strict shape inference), makes a fixed batch dynamic where the
graph allows it (checked by running it), converts the opset down when it is newer than the target,
simplifies it (checked against the original) and writes a bundle whose reference is the file as
given, run by ONNX Runtime FP32 (``reference.onnx`` in the bundle, sha256-recorded): no PyTorch
model exists, and the manifest and the report say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_se import progress
from edge_se.bundle import Bundle, atomic_path, sha256_file, staged_bundle_dir
from edge_se.errors import CheckFailed, InputError
from edge_se.manifest import ONNX, ONNX_REFERENCE_FILE, ONNX_SOURCE
from edge_se.preprocess import PreprocessSpec, list_images

#: the batch dimension's name when the import makes a fixed batch dynamic
BATCH_DIM = "batch"


def describe_spec(spec: PreprocessSpec) -> str:
    """One phrase for a preprocessing spec (resize, crop, colour, normalization)."""
    resize = f"resize {spec.resize}, " if spec.resize else ""
    return (f"{resize}crop {spec.crop[0]}x{spec.crop[1]}, {spec.color}, mean {list(spec.mean)}, std {list(spec.std)}")


def is_onnx_path(spec: str) -> bool:
    """True when a model argument names an ONNX file (``*.onnx``) rather than a model spec."""
    return spec.lower().endswith(".onnx")


def _load(path: Path):
    """The ONNX model at ``path`` (with its external data), or a one-line InputError."""
    import onnx

    if not path.is_file():
        raise InputError(f"ONNX file {path} does not exist; pass the path of a .onnx model")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # DecodeError, a missing external-data file, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"{path} is not a readable ONNX model ({first}); export it again or check its external data") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"onnx.checker rejects {path}: {first}") from None
    return model


def _graph_input(model, path: Path):
    """The single NCHW float32 graph input (initializers listed as inputs are ignored)."""
    import onnx

    inits = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    if len(inputs) != 1:
        raise InputError(f"{path} has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); edge-se bundles take "
                         "one NCHW image input")
    v = inputs[0]
    t = v.type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT:
        raise InputError(f"{path}: input {v.name!r} is {onnx.TensorProto.DataType.Name(t.elem_type)}; edge-se takes a "
                         "float32 NCHW input (export the model without its uint8 pre-processing)")
    if len(t.shape.dim) != 4:
        raise InputError(f"{path}: input {v.name!r} has rank {len(t.shape.dim)}; edge-se takes an NCHW (rank 4) input")
    return v


def _dims(v) -> list[int | None]:
    """Each dim of a value's shape: its fixed size, or None when symbolic or unknown."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in v.type.tensor_type.shape.dim]


def input_shape_of(model, path: Path, requested: Sequence[int] | None) -> tuple[tuple[int, int, int, int], bool]:
    """The bundle's input shape and whether the file's batch is already dynamic.

    ``requested`` (``--input-shape``) fills symbolic C/H/W dims and must agree with fixed ones.
    """
    v = _graph_input(model, path)
    dims = _dims(v)
    if requested is not None:
        want = [int(d) for d in requested]
        for i, (have, asked) in enumerate(zip(dims, want)):
            if i > 0 and have is not None and have != asked:
                raise InputError(f"--input-shape {'x'.join(map(str, want))} disagrees with {path}: its input {v.name!r} "
                                 f"has {'x'.join('?' if d is None else str(d) for d in dims)}")
        dims = [want[0] if want[0] > 0 else None, *[d if d is not None else a for d, a in zip(dims[1:], want[1:])]]
    elif any(d is None for d in dims[1:]):
        raise InputError(f"{path}: input {v.name!r} has symbolic dims "
                         f"{'x'.join('?' if d is None else str(d) for d in dims)}; pass --input-shape NxCxHxW")
    dynamic = _dims(v)[0] is None
    return (int(dims[0] or 1), int(dims[1]), int(dims[2]), int(dims[3])), dynamic


def set_batch_dim(model, value: int | str):
    """A copy of ``model`` whose input and output batch dims are ``value`` (an int or a dim name)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name for i in out.graph.initializer}
    for v in [*[i for i in out.graph.input if i.name not in inits], *out.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if not len(dims):
            continue
        d = dims[0]
        if isinstance(value, str):
            d.ClearField("dim_value")
            d.dim_param = value
        else:
            d.ClearField("dim_param")
            d.dim_value = int(value)
    del out.graph.value_info[:]  # stale shapes of the old batch would contradict the new one
    return out


def make_batch_dynamic(model, shape: Sequence[int]) -> tuple[Any, str | None]:
    """``model`` with a dynamic batch when running it at batch 2 gives the per-sample outputs.

    Returns ``(model, None)`` on success, else ``(original model, reason)``: a graph that hard-codes
    its batch (a Reshape to ``[1, -1]``, a constant-shaped Expand) keeps its fixed batch.
    """
    from edge_se.reference.check import ort_runner
    from edge_se.reference.numerics import compare_outputs

    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    try:
        want = ort_runner(model)(x)
        candidate = set_batch_dim(model, BATCH_DIM)
        got = ort_runner(candidate)(x)
    except Exception as e:  # ORT refuses the graph at batch 2: the batch is baked in
        from edge_se.export.onnx_export import error_reason

        return model, f"the graph does not run at batch 2 ({error_reason(e)})"
    if [g.shape for g in got] != [w.shape for w in want]:
        return model, f"at batch 2 the outputs have shapes {[list(g.shape) for g in got]}, not {[list(w.shape) for w in want]}"
    check = compare_outputs(want, got, "fp32")
    if not check["passed"]:
        return model, f"at batch 2 the outputs differ from batch {shape[0]}: {check['reason']}"
    return candidate, None


def import_onnx_bundle(
    onnx_path: str | Path,
    out: str | Path,
    *,
    input_shape: Sequence[int] | None = None,
    dynamic_batch: bool = True,
    images: str | Path | None = None,
    labels: str | Path | None = None,
    opset: int | None = None,
    simplifier: str = "onnxslim",
    trt_version: str | None = None,
    preprocessing: PreprocessSpec | None = None,
    force: bool = False,
) -> Bundle:
    """Make a validated bundle at ``out`` from the ONNX file ``onnx_path``; see the module docstring.

    ``dynamic_batch`` (default) makes a fixed batch dynamic when the graph allows it (a note says
    when it does not); ``opset`` converts a newer file down (None: keep the file's opset).
    """
    from edge_se.export.checks import check_onnx_file, check_shape_size, io_specs
    from edge_se.export.onnx_export import save_model
    from edge_se.export.opset import downconvert_opset, onnx_opset
    from edge_se.export.outpath import check_out_path
    from edge_se.export.pipeline import tool_versions
    from edge_se.export.simplify import simplify_model
    from edge_se.export.trt_ops import DEFAULT_TRT_VERSION, count_ops, op_support
    from edge_se.reference.check import ort_runner

    check_out_path(out)
    path = Path(onnx_path).expanduser()
    if images is not None:
        list_images(images)
    if labels is not None and not Path(labels).is_file():
        raise InputError(f"labels file {labels} does not exist")
    with progress.stage(f"Checking {path.name}"):
        source = _load(path)
        shape, was_dynamic = input_shape_of(source, path, input_shape)
    if source.ByteSize() >= 2**31 - 1:
        raise InputError(f"{path} holds over 2 GB of weights (external data); importing such a file is not supported "
                         "yet (the bundle keeps one self-contained copy as its reference)")
    check_shape_size(shape)
    spec = preprocessing or PreprocessSpec.for_input_shape(shape)
    if spec.channels != shape[1] or tuple(spec.crop) != tuple(shape[2:]):
        raise InputError(f"preprocessing gives {spec.channels}x{spec.crop[0]}x{spec.crop[1]} inputs but the ONNX input "
                         f"is {'x'.join(map(str, shape))}; make them agree")
    if preprocessing is None:
        progress.info(f"[yellow]note[/yellow]: an ONNX file does not record its preprocessing; assuming {describe_spec(spec)} "
                      "(pass --preprocessing FILE.toml if the model was trained otherwise)")
    notes: list[str] = []
    model = source
    dynamic = was_dynamic
    if dynamic_batch and not was_dynamic:
        with progress.stage("Making the batch dynamic"):
            model, why = make_batch_dynamic(source, shape)
        dynamic = why is None
        notes.append(f"made the fixed batch {shape[0]} dynamic (checked at batch 2)" if dynamic
                     else f"kept the fixed batch {shape[0]}: {why}")
    elif not dynamic_batch and was_dynamic:
        model = set_batch_dim(source, shape[0])
        notes.append(f"fixed the dynamic batch to {shape[0]} (--static-batch)")
    converted = None
    if opset is not None:
        model, converted = downconvert_opset(model, opset)
        if converted:
            notes.append(converted)
    for n in notes:
        progress.info(f"[yellow]note[/yellow]: {n}")

    with staged_bundle_dir(out, force=force) as stage:
        with atomic_path(stage / ONNX_REFERENCE_FILE) as tmp:
            tmp.write_bytes(source.SerializeToString())
        ref_fn = ort_runner(stage / ONNX_REFERENCE_FILE)
        feeds_x = np.random.default_rng(0).standard_normal((2 if dynamic else shape[0], *shape[1:])).astype(np.float32)
        with progress.stage(f"Simplifying with {simplifier}"):
            model, simp = simplify_model(model, {_graph_input(model, path).name: feeds_x}, simplifier)
            extra_files = save_model(model, stage / "model.onnx")
        if not simp.get("used"):
            progress.info(f"[yellow]note[/yellow]: kept the unsimplified graph ({simp.get('reason')})")
        onnx_check = check_onnx_file(stage / "model.onnx")
        inputs_spec, outputs_spec = io_specs(model)
        ops = op_support(count_ops(model), trt_version or DEFAULT_TRT_VERSION)
        bundle = Bundle.new(
            stage,
            model={
                "spec": str(path.name),
                "source": ONNX_SOURCE,
                "onnx_file": {"path": str(path.resolve()), "sha256": sha256_file(path)},
                "weights": f"from the ONNX file {path.name}",
                "seed": 0,
                "input_shape": list(shape),
                "dynamic_batch": dynamic,
                "resolution": "fixed",
                "fixed_by": "the ONNX file",
                "attention_type": None,
                "reference": {"backend": "onnxruntime", "precision": "fp32", "file": ONNX_REFERENCE_FILE},
                "import_notes": notes,
                "tracer_warnings": [],
            },
            preprocessing=spec.to_dict(),
            tools=tool_versions(),
            timings={},
        )
        bundle.manifest["model"]["reference"]["entry"] = bundle.file_entry(ONNX_REFERENCE_FILE)
        if labels is not None:
            with atomic_path(stage / "labels.txt") as tmp:
                tmp.write_bytes(Path(labels).read_bytes())
            bundle.manifest["labels"] = bundle.file_entry("labels.txt")
        bundle.add_artifact("model.onnx", stage="export", format=ONNX, precision="fp32", backend="onnxruntime",
                            extra_files=extra_files, policy=None, opset=onnx_opset(model), exporter="onnx-import",
                            exporter_fallback=None, opset_conversion=converted, exporter_log=None, simplifier=simp,
                            inputs=inputs_spec, outputs=outputs_spec,
                            tensorrt_ops={"trt_version": ops["trt_version"], "table": ops["table"], "note": ops["note"],
                                          "unsupported": ops["unsupported"], "unknown": ops["unknown"]})
        bundle.record_check({**onnx_check, "artifact": "model.onnx"})
        with progress.stage("Validating model.onnx against the ONNX file (ONNX Runtime FP32)"):
            validate_against_source(bundle, ref_fn, images=images)
        bundle.save()
        failed = [c for c in bundle.manifest["checks"] if not c["passed"]]
        if failed:
            from edge_se.reference.check import failed_summary

            raise CheckFailed(f"validation failed, nothing was published: {failed_summary(failed)}")
    return Bundle.open(out)


def validate_against_source(bundle: Bundle, ref_fn, images: str | Path | None = None) -> list[dict[str, Any]]:
    """Numerics of ``model.onnx`` against the imported file on real images, noise and scaled noise."""
    from edge_se.export.checks import fp32_onnx_numerics

    checks = fp32_onnx_numerics(bundle, ref_fn, images, seed=0)[0]
    for c in checks:
        c["reference"] = "onnxruntime fp32 (the imported ONNX file)"
        bundle.record_check(c)
    return checks

