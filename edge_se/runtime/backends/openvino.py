"""OpenVINO backend: an ONNX artifact compiled for the CPU by Intel's OpenVINO runtime.

One compiled model is shared by every thread, each with its own infer request (OpenVINO's
compiled model is thread-safe, an infer request is not). The inference precision is always
given explicitly: OpenVINO's own default on CPUs with BF16 instructions is BF16, which would
turn an FP32 artifact into a BF16 run without a word. ``bf16`` is asked for by name; INT8
artifacts (Q/DQ files) run their quantized parts as INT8 kernels and the rest in FP32.

INT8 files are compiled for one static batch size at a time (on first use of that size; the
:data:`STATIC_BATCHES` most recently used are kept). OpenVINO 2026.4's CPU plugin computes
``x - mean(x)`` after an INT8 convolution whose output is not requantized wrongly when the batch
is dynamic, bounded or not (it returns ``x``; SimAM's energy: logit SQNR 9 dB on simam_resnet18's
TensorRT-ready file, 32 dB on ONNX Runtime), and right when the shape is static or its
low-precision transformations are off. ``OvOptions(static_batch=False)`` keeps one dynamic model
(the runtime does so for edge-se's CPU-fast INT8 file, which requantizes every output). FP32 and
BF16 (no low-precision transformations) keep one dynamic-batch compiled model.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from edge_se.errors import BundleError, InputError, MissingDependencyError
from edge_se.runtime.backends.base import TensorSpec

#: runtime precision -> OpenVINO's INFERENCE_PRECISION_HINT (INT8 files keep their float parts FP32)
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
PERFORMANCE_HINTS = ("latency", "throughput")
#: static-batch compiled models an INT8 runner keeps (least recently used dropped first)
STATIC_BATCHES = 4


@dataclass(frozen=True)
class OvOptions:
    """OpenVINO compile options exposed by the runtime.

    ``precision``: ``fp32`` | ``bf16`` | ``int8`` (see :data:`HINTS`). ``threads``: OpenVINO's
    ``INFERENCE_NUM_THREADS`` (``None``: its default, every core). ``performance``: ``latency``
    (one stream: the fastest single call) or ``throughput`` (several streams, for concurrent
    callers). ``cache_dir``: OpenVINO's compiled-model cache (``CACHE_DIR``), for faster loads.
    ``static_batch``: one compiled model per batch size (``None``: for INT8; module doc).
    """

    precision: str = "fp32"
    threads: int | None = None
    performance: str = "latency"
    cache_dir: str | None = None
    static_batch: bool | None = None
    #: False: OpenVINO's low-precision transformations off, so Q/DQ runs exactly in FP32; None:
    #: off on x86 CPUs without VNNI, where the INT8 kernels saturate 8-bit weights (runtime/cpu.py)
    int8_kernels: bool | None = None

    @property
    def kernels(self) -> bool:
        """Whether INT8 files run on OpenVINO's INT8 kernels (see ``int8_kernels``)."""
        if self.int8_kernels is not None:
            return self.int8_kernels
        from edge_se.runtime.cpu import int8_saturation_risk

        return int8_saturation_risk() is None

    @property
    def static(self) -> bool:
        """Compile one static-batch model per batch size (default: for INT8; see the module doc)."""
        return self.precision == "int8" if self.static_batch is None else self.static_batch

    def __post_init__(self) -> None:
        if self.precision not in HINTS:
            raise InputError(f"the openvino backend runs {', '.join(HINTS)}, not {self.precision!r}")
        if self.performance not in PERFORMANCE_HINTS:
            raise InputError(f"performance hint must be one of {', '.join(PERFORMANCE_HINTS)}, got {self.performance!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InputError(f"threads must be a positive integer or None, got {self.threads!r}")

    def config(self) -> dict[str, object]:
        """The ``compile_model`` properties."""
        cfg: dict[str, object] = {"INFERENCE_PRECISION_HINT": HINTS[self.precision],
                                  "PERFORMANCE_HINT": self.performance.upper()}
        if self.threads is not None:
            cfg["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir is not None:
            cfg["CACHE_DIR"] = self.cache_dir
        if self.precision == "int8" and not self.kernels:
            cfg["LP_TRANSFORMS_MODE"] = False
        return cfg


def _openvino():
    from edge_se.runtime.backends.probe import require_openvino

    require_openvino()
    import openvino

    return openvino


def reason(error: BaseException, limit: int = 240) -> str:
    """OpenVINO's error on one line: the unconverted operations when it names them, without the
    C++ source locations."""
    text = str(error)
    ops = re.search(r"No conversion rule found for operations: ([^\n]+)", text)
    if ops:
        return f"no conversion rule for operation(s) {ops.group(1).strip()}"
    unsupported = re.search(r"[Uu]nsupported operation[^\n:]*: ?([^\n]+)", text)
    if unsupported:
        return f"unsupported operation {unsupported.group(1).strip()}"
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not re.match(r"(Exception from|Check '.*' failed at) \S+:\d+", ln.strip())]
    text = " ".join(lines) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def bf16_refusal(capabilities, flags: frozenset[str] | None = None) -> str | None:
    """The one-line refusal when OpenVINO's CPU ``capabilities`` lack BF16 (naming the missing
    instruction sets from ``flags``, default this CPU's), else None."""
    from edge_se.runtime.cpu import cpu_model, missing_bf16

    if "BF16" in capabilities:
        return None
    missing = missing_bf16(flags) or f"OpenVINO reports no BF16 capability on this CPU ({cpu_model()})"
    return (f"precision bf16 needs BF16 instructions: {missing}; run fp32 (or int8) here, or bf16 on a CPU with "
            "AVX512_BF16 or AMX (Intel Xeon 4th gen or later, AMD Zen 4 or later)")


def check_bf16(core) -> None:
    """Raise MissingDependencyError (exit 3) when OpenVINO cannot run BF16 on this CPU."""
    refusal = bf16_refusal(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if refusal is not None:
        raise MissingDependencyError(refusal)


def _spec(port) -> TensorSpec:
    try:
        dtype = np.dtype(port.get_element_type().to_dtype())
    except (TypeError, RuntimeError):
        raise BundleError(f"model tensor {port.get_any_name()!r} has type {port.get_element_type()}, "
                          "which the runtime does not support") from None
    shape, first = [], None
    for i, dim in enumerate(port.get_partial_shape()):
        if dim.is_static:
            shape.append(dim.get_length())
        else:
            shape.append(None)
            if i == 0:
                hi = dim.get_max_length()
                first = (max(dim.get_min_length(), 1), hi if hi >= 0 else None)
    batch_range = first or ((shape[0], shape[0]) if shape and shape[0] is not None else (1, None))
    return TensorSpec(port.get_any_name(), tuple(shape), dtype, batch_range)


class OpenVinoRunner:
    """Runs an ONNX file on OpenVINO's CPU plugin."""

    name = "openvino"

    def __init__(self, path: str | Path, options: OvOptions | None = None):
        ov = _openvino()
        self._ov = ov
        self.options = options or OvOptions()
        self.path = Path(path)
        self.core = ov.Core()
        if self.options.precision == "bf16":
            check_bf16(self.core)
        try:
            self.model = self.core.read_model(str(self.path))
        except RuntimeError as e:
            raise BundleError(f"OpenVINO {ov.__version__} cannot read the ONNX file {self.path} ({reason(e)}); "
                              "run it on --backend onnxruntime, or re-export it ('edge-se export')") from None
        self.version = ov.__version__
        self.inputs = [_spec(p) for p in self.model.inputs]
        self.outputs = [_spec(p) for p in self.model.outputs]
        self._lock = threading.Lock()
        #: batch size (None: the file's own dynamic batch) -> (compiled model, {thread id: infer request})
        self._compiled: OrderedDict[int | None, tuple[object, dict[int, object]]] = OrderedDict()
        self.static = self.options.static and any(s.shape and s.shape[0] is None for s in self.inputs)
        first = self.inputs[0].batch_range[0] if self.static else None
        self.compiled = self._compiled_for(first)[0]
        if not self.static:
            self.model = None  # one compiled model for good: the read model's weights need not stay

    def _compile(self, batch: int | None):
        """Compile the model, for a static ``batch`` when given (else as the file says)."""
        model = self.model
        if batch is not None:
            model = self.model.clone()
            model.reshape({port: self._ov.PartialShape([batch, *spec.shape[1:]])
                           for port, spec in zip(model.inputs, self.inputs) if spec.shape and spec.shape[0] is None})
        try:
            if self.options.cache_dir is not None and batch is None:  # keyed by the file: compile from the path
                return self.core.compile_model(str(self.path), "CPU", self.options.config())
            return self.core.compile_model(model, "CPU", self.options.config())
        except RuntimeError as e:
            raise BundleError(f"OpenVINO {self.version} cannot compile {self.path} for the CPU ({reason(e)}); "
                              "run it on --backend onnxruntime") from None

    def _compiled_for(self, batch: int | None):
        """``(compiled model, requests)`` of ``batch`` (compiled on first use; LRU of STATIC_BATCHES)."""
        with self._lock:
            entry = self._compiled.get(batch)
            if entry is not None:
                self._compiled.move_to_end(batch)
                return entry
        compiled = self._compile(batch)
        with self._lock:
            entry = self._compiled.setdefault(batch, (compiled, {}))
            self._compiled.move_to_end(batch)
            while len(self._compiled) > STATIC_BATCHES:
                self._compiled.popitem(last=False)  # its infer requests go with it
        return entry

    @property
    def _requests(self) -> list:
        """Every thread's infer request on the compiled models kept."""
        with self._lock:
            return [r for _, requests in self._compiled.values() for r in requests.values()]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self.compiled is None:
            raise InputError("this runtime was closed; load it again")
        batch = int(next(iter(feeds.values())).shape[0]) if self.static else None
        compiled, requests = self._compiled_for(batch)
        thread = threading.get_ident()  # an infer request is one thread's (a dead thread's id may be reused)
        request = requests.get(thread)
        if request is None:
            request = requests.setdefault(thread, compiled.create_infer_request())
        result = request.infer(dict(feeds), share_outputs=False)
        return [result[port] for port in compiled.outputs]

    def describe(self) -> dict:
        o = self.options
        return {
            "backend": self.name,
            "version": self.version,
            "providers": ["CPU"],
            "inference_precision": (self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
                                    if self.compiled else HINTS[o.precision]),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")) if self.compiled else o.threads,
            "streams": int(self.compiled.get_property("NUM_STREAMS")) if self.compiled else None,
            "performance_hint": o.performance,
            "cache_dir": o.cache_dir,
            "static_batches": list(self._compiled) if self.static else None,
            "int8_kernels": o.kernels if o.precision == "int8" else None,
        }

    def close(self) -> None:
        with self._lock:
            self._compiled.clear()
        self.compiled = None
