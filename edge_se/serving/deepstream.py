"""DeepStream ``nvinfer`` configs from a bundle: ``DIR/config_infer_primary.txt`` + the model files.

nvinfer preprocesses every frame as ``y = net-scale-factor * (x - offsets[c])`` on 0-255 pixels
after scaling the whole frame (or an object's box) to the network's size. A bundle's recipe is
``(x * scale - mean[c]) / std[c]`` after resize-shorter-side + center-crop. The offsets fold
exactly (``mean[c] / scale``); the scale does not when ``std`` differs per channel (nvinfer takes
one scalar), and nvinfer has no resize-then-center-crop. Both gaps are computed, written into the
config as comments and returned; ``exact=True`` removes the first: the ONNX gets the bundle's
normalization prepended (``model.normalized.onnx``, ``model.int8.trt.normalized.onnx``, validated against the original on ONNX
Runtime) and the config passes pixels through (``net-scale-factor=1``, zero offsets).

Precision follows the artifact: ``network-mode`` 0/1/2 (FP32/INT8/FP16); INT8 uses the TensorRT
Q/DQ file (explicit quantization, the quantize stage's precision decision built in) or, for
``model.onnx``, the quantize stage's calibration cache as ``int8-calib-file``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_se import manifest as mf
from edge_se.bundle import Bundle, atomic_write_text
from edge_se.errors import BundleError, CheckFailed, InputError
from edge_se.export.outpath import check_out_path
from edge_se.preprocess import PreprocessSpec, crop_offset, preprocess_batch, resized_size
from edge_se.serving.outdir import copy_verified, main_file_entry, staged_output
from edge_se.serving.triton import engine_batch_top

CONFIG_NAME = "config_infer_primary.txt"
PRECISIONS = ("fp32", "fp16", "int8")
#: nvinfer's network-mode values (gstnvinfer's property table)
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
#: nvinfer's model-color-format values
COLOR_FORMAT = {"RGB": 0, "BGR": 1, "GRAY": 2}
#: nvinfer's scaling-filter values (NvBufSurfTransform_Inter: Nearest, Bilinear, Algo1 = GPU cubic)
SCALING_FILTER = {"nearest": 0, "bilinear": 1, "bicubic": 2}
#: tensor names written into ``output-blob-names`` (';'-separated, so ';', '#', '=' and spaces are out)
BLOB_RE = re.compile(r"^[A-Za-z0-9_.:/\-]{1,256}$")
#: largest output difference accepted between the normalized ONNX and the original (relative to its range)
EXACT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DeepStreamOptions:
    """What ``edge-se export-deepstream`` was asked for (see its ``--help``)."""

    onnx: str | None = None
    engine: str | None = None
    precision: str | None = None
    batch_size: int = 1
    exact: bool = False
    #: (width, height) of the frames nvinfer sees: gives an ``nvvideoconvert src-crop`` for the center crop
    frame_size: tuple[int, int] | None = None
    gpu_id: int = 0


@dataclass(frozen=True)
class Normalization:
    """nvinfer's scalar normalization against the bundle's per-channel one, in network channel order."""

    net_scale_factor: float
    offsets: tuple[float, ...]
    #: per channel, nvinfer's scale over the bundle's (``s * std[c] / scale - 1``); 0 where exact
    scale_error: tuple[float, ...]

    @property
    def max_error(self) -> float:
        return max(abs(e) for e in self.scale_error)


@dataclass(frozen=True)
class DeepStreamConfig:
    """What was written: the folder, the config's path and text, and what nvinfer cannot reproduce."""

    root: Path
    config_path: Path
    config_text: str
    precision: str
    onnx_file: str
    normalization: Normalization
    caveats: tuple[str, ...]
    #: with ``exact``: max |normalized ONNX - original| over the check batch, relative to the output range
    exact_error: float | None = None


def fold_normalization(spec: PreprocessSpec, exact: bool = False) -> Normalization:
    """nvinfer's ``net-scale-factor``/``offsets`` for ``spec``; the scalar minimises the worst channel's error."""
    if exact:
        return Normalization(1.0, (0.0,) * spec.channels, (0.0,) * spec.channels)
    order = _network_order(spec)
    mean = [spec.mean[c] for c in order]
    std = [spec.std[c] for c in order]
    offsets = tuple(m / spec.scale for m in mean)
    per_channel = [spec.scale / s for s in std]
    lo, hi = min(per_channel), max(per_channel)
    factor = 2.0 * lo * hi / (lo + hi)  # equal relative error at both ends: |s/lo - 1| = |s/hi - 1|
    errors = tuple(0.0 if lo == hi else factor / k - 1.0 for k in per_channel)
    return Normalization(lo if lo == hi else factor, offsets, errors)


def _network_order(spec: PreprocessSpec) -> list[int]:
    """Index into the spec's (RGB-order) mean/std for each network channel (BGR flips after normalizing)."""
    return [2, 1, 0] if spec.color == "BGR" else list(range(spec.channels))


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)``; a one-line error otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--frame-size {text!r}: expected WIDTHxHEIGHT with positive integers, e.g. 1920x1080") from None
    if w < 1 or h < 1:
        raise InputError(f"--frame-size {text!r}: expected WIDTHxHEIGHT with positive integers, e.g. 1920x1080")
    return w, h


def _options_checked(opts: DeepStreamOptions) -> None:
    if opts.precision is not None and opts.precision not in PRECISIONS:
        raise InputError(f"--precision {opts.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {opts.batch_size}")
    if opts.gpu_id < 0:
        raise InputError(f"--gpu-id must be 0 or more, got {opts.gpu_id}")
    if opts.frame_size is not None and (len(opts.frame_size) != 2 or min(opts.frame_size) < 1):
        raise InputError(f"--frame-size {opts.frame_size!r}: expected WIDTHxHEIGHT with positive integers")
    if opts.exact and opts.engine:
        raise InputError("--exact changes the network's input, so a prebuilt --engine no longer fits it; drop "
                         "--engine (nvinfer builds the engine from the normalized ONNX on first run)")


@dataclass(frozen=True)
class _Choice:
    onnx: str
    precision: str
    engine: str | None
    calib_cache: str | None


def _choose(bundle: Bundle, opts: DeepStreamOptions) -> _Choice:
    """Which ONNX, engine, precision and calibration cache the config names."""
    if opts.engine:
        typed = bundle.record(opts.engine)
        if typed.format != mf.TENSORRT_ENGINE:
            raise InputError(f"--engine {opts.engine}: artifact is format {typed.format!r}, not a TensorRT "
                             "engine; build one with 'edge-se build BUNDLE --recipe ...'")
        record = bundle.artifact(opts.engine)
        onnx = typed.for_onnx
        if onnx is None or onnx not in bundle.artifacts:
            raise BundleError(f"artifact {opts.engine}: plan.onnx_artifact {onnx!r} names no artifact of the bundle; "
                              "rebuild the engine")
        if opts.onnx and opts.onnx != onnx:
            raise InputError(f"--onnx {opts.onnx}: engine {opts.engine} was built from {onnx}; drop --onnx or pass "
                             f"--onnx {onnx}")
        precision = typed.precision
        if precision not in PRECISIONS:
            raise BundleError(f"artifact {opts.engine}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if opts.precision and opts.precision != precision:
            raise InputError(f"--precision {opts.precision}: engine {opts.engine} was built {precision}; drop "
                             "--precision or build an engine of that precision")
        top = engine_batch_top(record)
        if opts.batch_size > top:
            raise InputError(f"--batch-size {opts.batch_size} is above engine {opts.engine}'s profile max ({top}); "
                             f"pass --batch-size {top} or less, or rebuild with a larger batch")
        cache = _cache_for(bundle, onnx) if precision == "int8" and not _is_qdq(bundle, onnx) else None
        return _Choice(onnx, precision, opts.engine, cache)
    precision = opts.precision
    onnx = opts.onnx
    if onnx is None:
        precision = precision or "fp32"
        onnx = mf.TRT_QDQ_ARTIFACT if precision == "int8" and mf.TRT_QDQ_ARTIFACT in bundle.artifacts else "model.onnx"
    record = bundle.record(onnx)
    if record.format != mf.ONNX:
        raise InputError(f"--onnx {onnx}: artifact is format {record.format!r}, not ONNX; nvinfer builds "
                         "engines from ONNX files (use --engine for a TensorRT engine)")
    if record.precision == "int8" and not _is_qdq(bundle, onnx):
        raise InputError(f"--onnx {onnx} is the CPU INT8 file (integer operators TensorRT cannot build); use "
                         f"{mf.TRT_QDQ_ARTIFACT}, the TensorRT-ready Q/DQ file")
    if record.precision not in ("fp32", "int8"):
        raise InputError(f"--onnx {onnx} is a {record.precision} file; nvinfer feeds float32 input, so give it "
                         "model.onnx and --precision fp16 (TensorRT builds the FP16 engine itself)")
    if _is_qdq(bundle, onnx):
        if precision not in (None, "int8"):
            raise InputError(f"--onnx {onnx} is quantized (Q/DQ) and builds as INT8; drop --precision or pass "
                             "--precision int8")
        return _Choice(onnx, "int8", None, None)
    precision = precision or "fp32"
    cache = _cache_for(bundle, onnx) if precision == "int8" else None
    if precision == "int8" and cache is None:
        raise InputError(f"--precision int8: bundle {bundle.root} has no INT8 file or calibration cache for {onnx}; "
                         f"run 'edge-se quantize {bundle.root} --precision int8 --calib SPEC' first")
    return _Choice(onnx, precision, None, cache)


def _is_qdq(bundle: Bundle, onnx: str) -> bool:
    record = bundle.record(onnx)
    return record.precision == "int8" and (onnx == mf.TRT_QDQ_ARTIFACT or record.backend == "tensorrt")


def _cache_for(bundle: Bundle, onnx: str) -> str | None:
    """The calibration cache artifact written for ``onnx`` (the quantize stage names its ONNX)."""
    for name in bundle.find(format=mf.TENSORRT_CALIBRATION_CACHE):
        if bundle.record(name).for_onnx == onnx:
            return name
    return None


def _io(bundle: Bundle, onnx: str, batch_size: int) -> tuple[dict[str, Any], list[str], bool]:
    """The one image input's spec, the output names, and whether the outputs look like a classifier's."""
    record = bundle.record(onnx)
    inputs, outputs = record.inputs, record.outputs
    if not inputs or not outputs:
        raise BundleError(f"artifact {onnx}: manifest has no inputs/outputs; re-export the bundle")
    if len(inputs) != 1:
        raise InputError(f"artifact {onnx} has {len(inputs)} inputs; nvinfer feeds one image input (use a "
                         "custom nvdspreprocess or Triton for multi-input models)")
    t = inputs[0]
    shape = list(t.shape)
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise InputError(f"artifact {onnx} input {t.name!r}: shape {shape!r} is not [batch, C, H, W] with "
                         "fixed C, H, W; nvinfer needs a fixed-size NCHW image input")
    if t.dtype != "float32":
        raise InputError(f"artifact {onnx} input {t.name!r} is {t.dtype}; nvinfer feeds float32")
    if isinstance(shape[0], int) and shape[0] != batch_size:
        raise InputError(f"--batch-size {batch_size}: artifact {onnx} has a static batch of {shape[0]}; pass "
                         f"--batch-size {shape[0]} or re-export with a dynamic batch")
    names = []
    for out in outputs:
        if not BLOB_RE.match(out.name):
            raise InputError(f"artifact {onnx} output name {out.name!r} cannot go into nvinfer's output-blob-names "
                             "(letters, digits and _ . : / - only); re-export with --output-names")
        names.append(out.name)
    classifier = len(outputs) == 1 and len(outputs[0].shape) == 2
    return {"name": t.name, "shape": shape, "dtype": t.dtype}, names, classifier


def _labels_line(bundle: Bundle) -> str | None:
    """nvinfer's classifier label file: one line per output layer, labels separated by ';'."""
    from edge_se.runtime.source import read_labels

    entry = bundle.manifest.get("labels")
    if not entry:
        return None
    labels = read_labels(bundle.verify_file(entry))
    bad = [lab for lab in labels if ";" in lab or not lab.isprintable()]
    if bad:
        raise InputError(f"label {bad[0]!r} in {bundle.root / entry['path']} holds ';' or a control character, which "
                         "nvinfer's classifier label file uses as separator; rename it and re-export the bundle")
    return ";".join(labels) + "\n"


def center_crop_region(spec: PreprocessSpec, frame: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of a ``frame`` (w, h) that resize-shorter-side + center-crop keeps.

    The bundle's resize and crop (``edge_se.preprocess``, torchvision's rounding) mapped back to the frame.
    """
    fw, fh = frame
    ch, cw = spec.crop
    rw, rh = resized_size(fw, fh, spec.resize) if spec.resize is not None else (fw, fh)
    w, h = min(fw, round(cw * fw / rw)), min(fh, round(ch * fh / rh))
    left = min(fw - w, round(crop_offset(rw, cw) * fw / rw))
    top = min(fh - h, round(crop_offset(rh, ch) * fh / rh))
    return left, top, w, h


def _caveats(spec: PreprocessSpec, norm: Normalization, opts: DeepStreamOptions, classifier: bool) -> list[str]:
    out = []
    if norm.max_error > 0:
        per = ", ".join(f"{e * 100:+.2f} %" for e in norm.scale_error)
        out.append(f"nvinfer applies one scale to all channels: net-scale-factor is off the bundle's per-channel "
                   f"1/std by {per} (network channel order); pass --exact for an ONNX with the normalization built in")
    if spec.resize is not None:
        if opts.frame_size:
            left, top, w, h = center_crop_region(spec, opts.frame_size)
            out.append(f"nvinfer scales the whole frame to {spec.crop[1]}x{spec.crop[0]} (no resize-shorter-side + "
                       f"center crop); for {opts.frame_size[0]}x{opts.frame_size[1]} frames crop upstream with "
                       f"nvvideoconvert src-crop={left}:{top}:{w}:{h}, which then matches the bundle's crop")
        else:
            out.append(f"nvinfer scales the whole frame (or object box) to {spec.crop[1]}x{spec.crop[0]}; the bundle "
                       f"resizes the shorter side to {spec.resize} and center-crops: crop upstream (nvvideoconvert "
                       "src-crop; --frame-size WxH computes it) or accept the difference")
    if classifier:
        out.append("the model outputs logits: nvinfer's default classifier parser compares the top value against "
                   "classifier-threshold (set to 0 here), it applies no softmax")
    return out


def config_text(choice: _Choice, spec: PreprocessSpec, norm: Normalization, io: tuple[dict[str, Any], list[str], bool],
                opts: DeepStreamOptions, files: dict[str, str], caveats: list[str]) -> str:
    """The ``[property]`` key file nvinfer reads (paths relative to the config file)."""
    inp, outputs, classifier = io
    _, c, h, w = inp["shape"]
    lines = ["# nvinfer config written by edge-se export-deepstream; paths are relative to this file",
             *(f"# NOTE: {c}" for c in caveats), "[property]",
             f"gpu-id={opts.gpu_id}",
             f"net-scale-factor={norm.net_scale_factor!r}",
             f"offsets={';'.join(repr(round(o, 6)) for o in norm.offsets)}",
             f"model-color-format={COLOR_FORMAT[spec.color]}",
             f"onnx-file={files['onnx']}"]
    if "engine" in files:
        lines.append(f"model-engine-file={files['engine']}")
    if "calib" in files:
        lines.append(f"int8-calib-file={files['calib']}")
    if "labels" in files:
        lines.append(f"labelfile-path={files['labels']}")
    lines += [f"batch-size={opts.batch_size}",
              f"# 0=FP32, 1=INT8, 2=FP16 ({choice.precision})",
              f"network-mode={NETWORK_MODE[choice.precision]}",
              f"infer-dims={c};{h};{w}",
              "network-input-order=0",
              f"scaling-filter={SCALING_FILTER[spec.interpolation]}",
              "maintain-aspect-ratio=0",
              "process-mode=1",
              "gie-unique-id=1",
              f"network-type={1 if classifier else 100}",
              f"output-blob-names={';'.join(outputs)}"]
    lines += ["classifier-threshold=0"] if classifier else ["output-tensor-meta=1"]
    return "\n".join(lines) + "\n"


def normalized_onnx(src: Path, dest: Path, spec: PreprocessSpec, input_name: str) -> None:
    """Write ``src`` with ``x * (scale/std) - mean/std`` (network channel order) run on its input first."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    order = _network_order(spec)
    gain = np.array([spec.scale / spec.std[c] for c in order], np.float32).reshape(1, -1, 1, 1)
    bias = np.array([-spec.mean[c] / spec.std[c] for c in order], np.float32).reshape(1, -1, 1, 1)
    taken = {t for n in graph.node for t in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    inner = f"{input_name}__edge_se_normalized"
    while inner in taken:
        inner += "_"
    for node in graph.node:
        node.input[:] = [inner if t == input_name else t for t in node.input]
    for out in graph.output:
        if out.name == input_name:
            raise InputError(f"{src}: the input {input_name!r} is also an output; --exact cannot prepend to it")
    graph.initializer.extend([numpy_helper.from_array(gain, inner + "_gain"), numpy_helper.from_array(bias, inner + "_bias")])
    scaled = inner + "_scaled"
    prefix = [helper.make_node("Mul", [input_name, inner + "_gain"], [scaled], name=inner + "_Mul"),
              helper.make_node("Add", [scaled, inner + "_bias"], [inner], name=inner + "_Add")]
    nodes = prefix + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))


def normalized_name(onnx_name: str) -> str:
    """``model.int8.trt.onnx`` -> ``model.int8.trt.normalized.onnx``."""
    return onnx_name[: -len(".onnx")] + ".normalized.onnx" if onnx_name.endswith(".onnx") else onnx_name + ".normalized"


def check_normalized(original: Path, normalized: Path, spec: PreprocessSpec, input_spec: dict[str, Any],
                     batch: int) -> float:
    """Max |normalized(pixels) - original(preprocess(pixels))| / output range, on ONNX Runtime."""
    from edge_se.reference.check import ort_session

    rng = np.random.default_rng(0)
    ch, cw = spec.crop
    shape = (batch, ch, cw) if spec.color == "GRAY" else (batch, ch, cw, 3)
    images = list(rng.integers(0, 256, size=shape, dtype=np.uint8))
    plain = dataclasses.replace(spec, resize=None, layout="NCHW", dtype="float32")
    reference_in = preprocess_batch(images, plain)  # the runtime's own normalization, no resize
    pixels = np.stack([im[None] if im.ndim == 2 else im[:, :, _network_order(spec)].transpose(2, 0, 1)
                       for im in images]).astype(np.float32)
    name = input_spec["name"]
    ref = ort_session(original, threads=1).run(None, {name: reference_in})
    got = ort_session(normalized, threads=1).run(None, {name: pixels})
    worst = 0.0
    for r, g in zip(ref, got):
        span = float(np.max(np.abs(r))) or 1.0
        worst = max(worst, float(np.max(np.abs(r.astype(np.float64) - g))) / span)
    return worst


def export_deepstream(bundle_dir: str | Path, out: str | Path, opts: DeepStreamOptions = DeepStreamOptions(),
                      force: bool = False) -> DeepStreamConfig:
    """Write an nvinfer config and the files it names for one bundle (see the module docstring)."""
    _options_checked(opts)
    bundle = Bundle.open(bundle_dir)
    spec = bundle.preprocessing()
    if spec.layout != "NCHW":
        raise InputError(f"bundle {bundle.root} preprocessing layout is {spec.layout}; nvinfer's config is written for "
                         "NCHW image inputs here: re-export with layout NCHW")
    choice = _choose(bundle, opts)
    io = _io(bundle, choice.onnx, opts.batch_size)
    if tuple(io[0]["shape"][1:]) != (spec.channels, *spec.crop):
        raise BundleError(f"artifact {choice.onnx} input {io[0]['shape'][1:]} does not match the preprocessing "
                          f"({spec.channels} channels, crop {list(spec.crop)}); re-export the bundle")
    if opts.exact and choice.calib_cache:
        raise InputError("--exact with the calibration cache: the cache's scales are for the original input; use "
                         f"the Q/DQ file ({mf.TRT_QDQ_ARTIFACT}, the default for --precision int8) with --exact")
    norm = fold_normalization(spec, exact=opts.exact)
    labels = _labels_line(bundle) if io[2] else None
    caveats = _caveats(spec, norm, opts, io[2])
    out = check_out_path(out)
    exact_error = None
    onnx_name = Path(choice.onnx).name
    files = {"onnx": normalized_name(onnx_name) if opts.exact else onnx_name}
    with staged_output(out, force, "deepstream-config", bundle) as stage:
        onnx_record = bundle.artifact(choice.onnx)
        if len(onnx_record["files"]) != 1:
            raise InputError(f"artifact {choice.onnx} has {len(onnx_record['files'])} files (external data); nvinfer's "
                             "onnx-file names one file: re-export without external data")
        original = copy_verified(bundle, onnx_record["files"][0], stage / onnx_name)
        if opts.exact:
            normalized_onnx(original, stage / files["onnx"], spec, io[0]["name"])
            exact_error = check_normalized(original, stage / files["onnx"], spec, io[0],
                                           opts.batch_size if isinstance(io[0]["shape"][0], int) else 4)
            if exact_error > EXACT_TOLERANCE:
                raise CheckFailed(f"{files['onnx']} differs from {choice.onnx} by {exact_error:.2e} of the output "
                                      f"range on ONNX Runtime (tolerance {EXACT_TOLERANCE:g}); please report this")
            original.unlink()
        for key, artifact, dest in (("engine", choice.engine, "model.engine"), ("calib", choice.calib_cache,
                                                                                  "calibration.cache")):
            if artifact:
                copy_verified(bundle, main_file_entry(bundle, artifact), stage / dest)
                files[key] = dest
        if labels is not None:
            atomic_write_text(stage / "labels.txt", labels)
            files["labels"] = "labels.txt"
        text = config_text(choice, spec, norm, io, opts, files, caveats)
        atomic_write_text(stage / CONFIG_NAME, text)
    return DeepStreamConfig(out, out / CONFIG_NAME, text, choice.precision, files["onnx"], norm, tuple(caveats),
                            exact_error)
