"""The embedded runtime: load a bundle (or one model file), check inputs, batch, predict, top-k.

``Runtime.load`` verifies the artifact's sha256 against the manifest, picks the backend
(TensorRT engine when TensorRT and a GPU are present, else ONNX Runtime; TorchScript only on
request), warms it up, and returns a runtime whose ``predict`` is safe to call from several
threads. Importing this module imports neither torch nor the export code.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from edge_se.errors import BundleError, ImagesError, InputError
from edge_se.preprocess import PreprocessSpec, list_images, preprocess_batch
from edge_se.runtime.backends.base import Runner, TensorSpec
from edge_se.runtime import batching
from edge_se.runtime.batching import check_input, chunks, format_bytes, plan_batch, rows_within
from edge_se.runtime.source import Source, resolve


class NonFiniteInputWarning(RuntimeWarning):
    """An input holds NaN or Inf values (given once per input and runtime; ``strict=True`` refuses them)."""


class TopK(NamedTuple):
    """One top-k entry: class index, score (softmax probability unless told otherwise), label."""

    index: int
    score: float
    label: str | None


def _is_image(item: Any) -> bool:
    if isinstance(item, (str, os.PathLike)):
        return True
    if isinstance(item, np.ndarray):
        return item.dtype == np.uint8 and item.ndim in (2, 3)
    return type(item).__module__.startswith("PIL.")


def top_k(scores: np.ndarray, k: int = 5, labels: Sequence[str] | None = None,
          softmax: bool = True) -> list[list[TopK]]:
    """Top-``k`` classes per row of ``scores`` [N, classes], best first."""
    if not isinstance(k, int) or k < 1:
        raise InputError(f"top-k must be a positive integer, got {k!r}")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"top-k needs a classifier output [N, classes], got shape {list(scores.shape)}")
    n_classes = scores.shape[1]
    if labels is not None and len(labels) != n_classes:
        raise BundleError(f"the labels file has {len(labels)} labels but the model outputs {n_classes} classes")
    x = scores.astype(np.float64)
    if softmax:
        x = np.exp(x - x.max(axis=1, keepdims=True))
        x /= x.sum(axis=1, keepdims=True)
    k = min(k, n_classes)
    order = np.argsort(-x, axis=1, kind="stable")[:, :k]
    return [
        [TopK(int(i), float(row[i]), labels[i] if labels is not None else None) for i in idx]
        for row, idx in zip(x, order)
    ]


class Runtime:
    """A loaded model ready to predict. Build it with :meth:`Runtime.load`."""

    def __init__(self, runner: Runner, source: Source, *, strict: bool = False):
        """``strict``: refuse inputs holding NaN/Inf values (InputError) instead of warning once."""
        self.runner = runner
        self.source = source
        self.warmup_runs = 0
        self.strict = bool(strict)
        self._warned_nonfinite: set[str] = set()

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        backend: str = "auto",
        *,
        precision: str | None = None,
        artifact: str | None = None,
        preprocessing: PreprocessSpec | dict | None = None,
        labels: str | os.PathLike[str] | Sequence[str] | None = None,
        verify: bool = True,
        sha256: str | None = None,
        warmup: int = 1,
        threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization: str = "all",
        execution_mode: str = "sequential",
        providers: Sequence[str] | None = None,
        io_binding: bool | None = None,
        max_contexts: int = 4,
        cache_dir: str | os.PathLike[str] | None = None,
        strict: bool = False,
    ) -> "Runtime":
        """Load a bundle folder or one ``.onnx`` / ``.engine`` / ``.plan`` / ``.ts`` file.

        ``backend``: ``auto`` | ``onnxruntime`` | ``openvino`` | ``tensorrt`` | ``torchscript``;
        ``auto`` follows the bundle's saved measurement (``edge-se bench --save-choice``) on the
        CPU it was made on, else a TensorRT engine when TensorRT and a GPU are present, else ONNX
        Runtime. ``precision`` (fp32/fp16/bf16/int8; bf16 is OpenVINO's BF16 on the FP32 file) or
        ``artifact`` (a manifest name) choose the bundle's file.
        ``preprocessing``/``labels`` override the manifest's (needed for a single file to take
        images). ``verify=False`` skips the sha256 check; ``sha256`` is checked for a single file.
        ``warmup``: inference runs on load (0 to skip). ``threads``: intra-op threads (ONNX
        Runtime, torch); ``inter_op_threads``, ``graph_optimization``, ``execution_mode``,
        ``providers``, ``io_binding``: ONNX Runtime session options. ``max_contexts``: TensorRT
        execution contexts in the pool. ``cache_dir``: keep ONNX Runtime-optimized models there
        for faster, leaner later loads (see :mod:`edge_se.runtime.ort_cache`; on OpenVINO, its
        compiled-model cache). ``strict``: refuse
        inputs holding NaN/Inf values (by default :meth:`run` warns once per input).
        """
        if not isinstance(warmup, int) or warmup < 0:
            raise InputError(f"warmup must be a non-negative integer, got {warmup!r}")
        if cache_dir is not None:
            from edge_se.runtime.ort_cache import check_cache_dir

            check_cache_dir(cache_dir)
        source = resolve(path, backend, precision=precision, artifact=artifact, preprocessing=preprocessing,
                         labels=labels, verify=verify, sha256=sha256, defer=cache_dir is not None)
        runner: Runner | None = None
        if source.backend == "openvino":
            try:
                runner = _openvino_runner(source, threads, cache_dir)
            except BundleError as e:
                if not source.chosen or precision == "bf16":
                    raise
                # ``auto`` followed a saved choice OpenVINO cannot run here: the default backend instead
                source = resolve(path, "onnxruntime", precision=precision, preprocessing=preprocessing,
                                 labels=labels, verify=verify, sha256=sha256, defer=cache_dir is not None)
                source.notes.append(f"the saved choice (openvino) failed, using ONNX Runtime: {e}")
        if source.backend == "onnxruntime":
            from edge_se.runtime.backends.onnxruntime import OrtOptions

            extra = {}
            if risk := _int8_risk(source, "onnxruntime"):
                extra["session.disable_quant_qdq"] = "1"
                source.notes.append(f"{risk}: ONNX Runtime runs this INT8 file's Q/DQ exactly in FP32 (fusion off), "
                                    "correct but without INT8 speed; re-quantize with --reduce-range for INT8 kernels")
            options = OrtOptions(threads, inter_op_threads, graph_optimization, execution_mode,
                                 tuple(providers) if providers is not None else None, io_binding, extra_config=extra)
            runner = _ort_runner(source, options, cache_dir, verify)
        elif runner is None:
            source.complete_verification()
            if cache_dir is not None:
                source.notes.append(f"cache_dir ignored: it applies to the onnxruntime and openvino backends, "
                                    f"not {source.backend}")
            inputs, outputs = source.manifest_specs("inputs"), source.manifest_specs("outputs")
            if not inputs:
                inputs = [_spec_from_preprocessing(source)]
            if source.backend in ("torchscript", "pt2", "aoti", "executorch"):
                runner = torch_file_runner(source.backend, source.path, source.record, inputs, outputs, threads)
            else:
                from edge_se.runtime.backends.tensorrt import TensorRTBackend

                runner = TensorRTBackend(source.path, inputs, outputs, max_contexts=max_contexts)
        rt = cls(runner, source, strict=strict)
        rt.warm_up(warmup)
        return rt

    def example_inputs(self, batch: int | None = None, seed: int | None = None) -> dict[str, np.ndarray] | None:
        """Inputs of the model's shape: zeros, or seeded standard-normal values when ``seed`` is
        given; ``batch`` defaults to the smallest the model takes. None if a dim is unknown.
        A batch whose inputs would exceed :data:`~edge_se.runtime.batching.MAX_INPUT_BYTES` is
        refused before anything is allocated."""
        shapes = {}
        for spec in self.inputs:
            shape = _concrete_shape(spec, self.source)
            if shape is None:
                return None
            if batch is not None:
                shape = (batch, *shape[1:])
            shapes[spec.name] = (shape, spec.dtype)
        row_bytes = sum(int(np.prod(s[1:], dtype=np.int64)) * d.itemsize for s, d in shapes.values())
        rows = next(iter(shapes.values()))[0][0] if shapes else 0
        if rows * row_bytes > batching.MAX_INPUT_BYTES:
            name, (shape, dtype) = next(iter(shapes.items()))
            raise InputError(
                f"batch {rows} would make the model's inputs {format_bytes(rows * row_bytes)} (input '{name}' "
                f"{list(shape)} {dtype.name}), above the {format_bytes(batching.MAX_INPUT_BYTES)} bound for one "
                f"call; use a batch of at most {rows_within(row_bytes)}"
            )
        rng = np.random.default_rng(seed) if seed is not None else None
        return {name: (np.zeros(shape, dtype) if rng is None else rng.standard_normal(shape).astype(dtype))
                for name, (shape, dtype) in shapes.items()}

    def warm_up(self, runs: int = 1) -> int:
        """Run ``runs`` inferences on zeros of the model's smallest batch; returns runs done."""
        feeds = self.example_inputs()
        if feeds is None:
            self.source.notes.append("warm-up skipped: an input has dynamic dims other than the batch")
            return 0
        for _ in range(runs):
            self.runner.infer(feeds)
        self.warmup_runs += runs
        return runs

    # -- properties ----------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        return self.runner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.runner.outputs

    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def preprocessing(self) -> PreprocessSpec | None:
        return self.source.preprocessing

    @property
    def labels(self) -> list[str] | None:
        return self.source.labels

    def describe(self) -> dict[str, Any]:
        """What runs: source, artifact, verification, backend, providers, options, notes."""
        return {
            "source": str(self.source.bundle_root or self.source.path),
            "artifact": self.source.artifact or self.source.path.name,
            "precision": self.source.precision,
            "sha256_verified": self.source.verified,
            **self.runner.describe(),
            "inputs": [s.describe() for s in self.inputs],
            "warmup_runs": self.warmup_runs,
            "notes": list(self.source.notes),
        }

    # -- inference -----------------------------------------------------------------------
    def preprocess(self, images: Any) -> np.ndarray:
        """Images (paths, a folder, PIL images or uint8 arrays) -> the model's input batch."""
        spec = self.preprocessing
        if spec is None:
            raise InputError(
                "this model has no preprocessing spec (a single model file was loaded without one); "
                "pass preprocessing= to Runtime.load, or give arrays instead of images"
            )
        if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
            images = list_images(images)
        elif _is_image(images):
            images = [images]
        batch = preprocess_batch(list(images), spec)
        dtype = self.inputs[0].dtype
        return batch if batch.dtype == dtype else batch.astype(dtype)

    def run(self, feeds: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw inference: one array (single-input models) or ``{name: array}`` -> ``{name: output}``."""
        specs = self.inputs
        if isinstance(feeds, np.ndarray):
            if len(specs) != 1:
                names = ", ".join(s.name for s in specs)
                raise InputError(f"the model has {len(specs)} inputs ({names}); pass a dict {{name: array}}")
            feeds = {specs[0].name: feeds}
        elif isinstance(feeds, Mapping):
            want, got = {s.name for s in specs}, set(feeds)
            if want != got:
                raise InputError(f"expected inputs {sorted(want)}, got {sorted(got)}")
        else:
            raise InputError(f"expected a numpy array or a dict of arrays, got {type(feeds).__name__}")
        for spec in specs:
            check_input(feeds[spec.name], spec)
            self._check_finite(spec.name, feeds[spec.name])
        n = {a.shape[0] for a in feeds.values()}
        if len(n) != 1:
            raise InputError(f"all inputs must have the same batch size, got {sorted(n)}")
        # above the model's batch range (a TensorRT profile) or the memory bound: model-sized chunks
        row_bytes = sum(a[:1].nbytes for a in feeds.values())
        plan = plan_batch(n.pop(), specs[0], split=True, max_rows=rows_within(row_bytes))
        names = [o.name for o in self.outputs]
        if plan.direct:
            return dict(zip(names, self.runner.infer(feeds)))
        parts = [self.runner.infer(part) for part in chunks(dict(feeds), plan)]
        return {name: np.concatenate([p[i] for p in parts])[: plan.n] for i, name in enumerate(names)}

    def _check_finite(self, name: str, array: np.ndarray) -> None:
        """Warn once per input (or refuse, when strict) about NaN/Inf values in a float input."""
        if array.dtype.kind != "f":
            return
        with np.errstate(all="ignore"):
            if np.isfinite(array.sum(dtype=np.float64)):  # one pass, no copy; NaN/Inf propagate
                return
        bad = ~np.isfinite(array)
        count = int(np.count_nonzero(bad))
        if count == 0:  # the sum overflowed, the values are finite
            return
        nans = int(np.count_nonzero(np.isnan(array)))
        first = [int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape)]
        what = (f"input '{name}' holds {nans} NaN and {count - nans} Inf value(s) of {array.size} "
                f"(first at index {first})")
        if self.strict:
            raise InputError(f"{what}; the model's outputs would be meaningless: fix the input (its source or "
                             "preprocessing), or drop strict=True (--strict) to only warn")
        if name not in self._warned_nonfinite:
            self._warned_nonfinite.add(name)
            warnings.warn(f"{what}: the outputs for those samples are meaningless (warned once per input; "
                          "strict=True / --strict refuses such inputs)", NonFiniteInputWarning,
                          stacklevel=_caller_level())

    def predict(self, inputs: Any) -> np.ndarray:
        """The first output for arrays or images (paths, a folder, PIL images, uint8 HxWxC arrays)."""
        if isinstance(inputs, np.ndarray) and not (_is_image(inputs) and self.inputs[0].dtype != np.uint8):
            x = inputs
        elif isinstance(inputs, Mapping):
            return next(iter(self.run(inputs).values()))
        elif _is_image(inputs) or (isinstance(inputs, (list, tuple)) and inputs and all(map(_is_image, inputs))):
            x = self.preprocess(inputs)
        else:
            raise ImagesError(
                f"expected a numpy array, an image path, a folder, a PIL image or a list of images, "
                f"got {type(inputs).__name__}"
            )
        return next(iter(self.run(x).values()))

    def classify(self, inputs: Any, k: int = 5, softmax: bool = True) -> list[list[TopK]]:
        """Top-``k`` (index, score, label) per sample; scores are softmax probabilities unless
        ``softmax=False`` (then the raw output values)."""
        return top_k(self.predict(inputs), k, self.labels, softmax)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside this module (the user's call to run/predict)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    return level


def torch_file_runner(backend: str, path: Path, record: dict, inputs: list[TensorSpec], outputs: list[TensorSpec],
                      threads: int | None = None) -> Runner:
    """The runner of a TorchScript, torch.export, AOTInductor or ExecuTorch file (``record``: its manifest entry)."""
    if backend == "torchscript":
        from edge_se.runtime.backends.torchscript import TorchScriptRunner

        return TorchScriptRunner(path, inputs, outputs, threads=threads)
    if backend == "executorch":
        from edge_se.runtime.backends.executorch import ExecuTorchRunner

        return ExecuTorchRunner(path, inputs, outputs, threads=threads,
                                batch_range=inputs[0].batch_range if inputs else (1, None))
    from edge_se.runtime.backends.torch_export import AotiRunner, ExportedProgramRunner

    if backend == "aoti":
        return AotiRunner(path, inputs, outputs, threads=threads, built=record)
    return ExportedProgramRunner(path, inputs, outputs, threads=threads)


def _ort_runner(source: Source, options, cache_dir, verify: bool) -> Runner:
    """An ONNX Runtime runner, through the optimized-model cache when ``cache_dir`` is given."""
    from edge_se.runtime.backends.onnxruntime import OnnxRuntimeRunner

    if cache_dir is None or options.graph_optimization == "disable":
        source.complete_verification()
        return OnnxRuntimeRunner(source.path, options)
    from edge_se.runtime.ort_cache import CacheEntry

    entry = CacheEntry.for_source(cache_dir, source.key_sha256, options.graph_optimization)
    hit = entry.lookup(verify)
    if hit is not None:
        vouched = source.pending is not None  # the manifest vouched for the source of this entry
        source.pending = None
        source.verified = source.verified or (verify and vouched)
        source.notes.append(f"optimized model from the cache: {hit}")
        return OnnxRuntimeRunner(hit, options, preoptimized=True)
    source.complete_verification()
    with entry.writer() as tmp:
        runner = OnnxRuntimeRunner(source.path, options, save_optimized=tmp)
    entry.seal({"artifact": source.artifact or source.path.name, "graph_optimization": options.graph_optimization})
    source.notes.append(f"optimized model saved to the cache: {entry.model}")
    return runner


def _openvino_runner(source: Source, threads: int | None, cache_dir) -> Runner:
    """An OpenVINO runner for the (verified) source at its compute precision."""
    from edge_se.runtime.backends.openvino import OpenVinoRunner, OvOptions

    source.complete_verification()
    precision = source.precision if source.precision in ("bf16", "int8") else "fp32"
    # the CPU-fast INT8 file requantizes every convolution's output: correct with a dynamic batch
    # (all 20 zoo models) and 13-28 % slower static on se_resnet50; any other INT8 file is
    # compiled per static batch (OvOptions.static)
    static = False if precision == "int8" and source.record.get("backend") == "onnxruntime" else None
    risk = _int8_risk(source) if precision == "int8" else None
    kernels = None if precision != "int8" else risk is None  # decided from the file's record, not the CPU alone
    if risk:
        source.notes.append(f"{risk}: OpenVINO runs this INT8 file's Q/DQ exactly in FP32 (low-precision "
                            "transformations off), correct but without INT8 speed")
    return OpenVinoRunner(source.path, OvOptions(precision, threads, cache_dir=None if cache_dir is None else str(cache_dir),
                                                 static_batch=static, int8_kernels=kernels))


def _int8_risk(source: Source, backend: str = "openvino") -> str | None:
    """Why an INT8 file would saturate on this CPU's kernels (None: it will not).

    Only 7-bit weights (the CPU file quantized with ``reduce_range``) are safe there; ONNX Runtime's
    kernels also run the TensorRT Q/DQ file's signed activations without loss (measured).
    """
    from edge_se.runtime.cpu import int8_saturation_risk

    risk = int8_saturation_risk()
    if risk is None or source.record.get("precision") != "int8":
        return None
    if (source.record.get("int8") or {}).get("reduce_range"):
        return None
    if backend == "onnxruntime" and source.record.get("backend") == "tensorrt":
        return None
    return risk


def _spec_from_preprocessing(source: Source) -> TensorSpec:
    spec = source.preprocessing
    if source.input_shape:
        return TensorSpec("input", (None, *source.input_shape[1:]), np.dtype("float32"))
    if spec is None:
        raise InputError(
            f"{source.path} stores no input shape; pass preprocessing= (crop, color, layout) so the "
            "runtime knows the model's input"
        )
    h, w = spec.crop
    dims = (spec.channels, h, w) if spec.layout == "NCHW" else (h, w, spec.channels)
    return TensorSpec("input", (None, *dims), np.dtype(spec.dtype))


def _concrete_shape(spec: TensorSpec, source: Source) -> tuple[int, ...] | None:
    dims = list(spec.shape)
    if dims and dims[0] is None:
        dims[0] = spec.batch_range[0]
    if any(d is None for d in dims[1:]):
        known = source.input_shape
        if known and len(known) == len(dims):
            dims = [d if d is not None else int(k) for d, k in zip(dims, known)]
            dims[0] = spec.batch_range[0] if spec.static_batch is None else spec.static_batch
    return tuple(dims) if all(d is not None for d in dims) else None
