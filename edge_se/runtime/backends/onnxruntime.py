"""ONNX Runtime backend: one shared ``InferenceSession`` (its ``run`` is thread-safe).

Providers: the GPU ones (TensorRT, CUDA execution providers) when this onnxruntime build has
them and a GPU is present, then CPU. IO binding is used with GPU providers (inputs bound once,
outputs copied back once) and off on CPU, where plain ``run`` is as fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from edge_se.errors import BundleError, InputError, MissingDependencyError
from edge_se.runtime.backends.base import TensorSpec, dims_from
from edge_se.runtime.backends.probe import ort_gpu_providers

GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime session options exposed by the runtime.

    ``intra_op_threads``/``inter_op_threads``: ``None`` keeps ONNX Runtime's default (one thread
    per physical core). ``providers``: ``None`` picks GPU providers when usable, then CPU.
    ``io_binding``: ``None`` turns it on only with a GPU provider.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization: str = "all"
    execution_mode: str = "sequential"
    providers: tuple[str, ...] | None = None
    io_binding: bool | None = None
    extra_config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.graph_optimization not in GRAPH_OPTIMIZATION:
            raise InputError(
                f"graph optimization level must be one of {', '.join(GRAPH_OPTIMIZATION)}, "
                f"got {self.graph_optimization!r}"
            )
        if self.execution_mode not in EXECUTION_MODES:
            raise InputError(
                f"execution mode must be one of {', '.join(EXECUTION_MODES)}, got {self.execution_mode!r}"
            )
        for key in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{key} must be a positive integer or None, got {value!r}")


def session_options(options: OrtOptions):
    """An ``onnxruntime.SessionOptions`` from :class:`OrtOptions` (also used by the benchmarks)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if options.intra_op_threads is not None:
        so.intra_op_num_threads = options.intra_op_threads
    if options.inter_op_threads is not None:
        so.inter_op_num_threads = options.inter_op_threads
    level = ort.GraphOptimizationLevel
    so.graph_optimization_level = {
        "disable": level.ORT_DISABLE_ALL,
        "basic": level.ORT_ENABLE_BASIC,
        "extended": level.ORT_ENABLE_EXTENDED,
        "all": level.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    so.execution_mode = (
        ort.ExecutionMode.ORT_SEQUENTIAL if options.execution_mode == "sequential" else ort.ExecutionMode.ORT_PARALLEL
    )
    for key, value in options.extra_config.items():
        so.add_session_config_entry(key, value)
    return so


def _providers(requested: tuple[str, ...] | None) -> list[str]:
    import onnxruntime as ort

    if requested is None:
        return [*ort_gpu_providers(), "CPUExecutionProvider"]
    have = ort.get_available_providers()
    missing = [p for p in requested if p not in have]
    if missing:
        hint = " (install onnxruntime-gpu and run on a machine with an NVIDIA GPU)" if any(
            "CUDA" in p or "Tensorrt" in p for p in missing
        ) else ""
        raise MissingDependencyError(
            f"ONNX Runtime execution provider(s) {', '.join(missing)} not available in onnxruntime "
            f"{ort.__version__} (available: {', '.join(have)}){hint}"
        )
    return list(requested)


def _reason(error: BaseException, limit: int = 240) -> str:
    """ONNX Runtime's error message on one short line, without its C++ source locations."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : ", "", text)
    text = re.sub(r"/\S*onnxruntime_src/\S+:\d+ [\w:~<>,*& ]+\([^()]*\)( const)? ?", "", text)
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class OnnxRuntimeRunner:
    """Runs an ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, options: OrtOptions | None = None, *, save_optimized: Path | None = None,
                 preoptimized: bool = False):
        """``save_optimized``: also write the optimized graph there; ``preoptimized``: ``path`` is
        such a graph (loaded with graph optimization off)."""
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        self.options = options or OrtOptions()
        self.path = Path(path)
        providers = _providers(self.options.providers)
        self.preoptimized = preoptimized
        so = session_options(self.options)
        if preoptimized:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if save_optimized is not None:
            so.optimized_model_filepath = str(save_optimized)
        # Native log lines only for fatal errors: a model that fails to load would otherwise also dump
        # a multi-line native error before the exception (reported below on one line), and the
        # "hardware-specific model" warning of save_optimized is expected.
        so.log_severity_level = 4
        # every ONNX Runtime error class (InvalidProtobuf, Fail, NoModel, EPFail, ...) derives from Exception
        load_errors = tuple(c for c in vars(ort_state).values() if isinstance(c, type) and issubclass(c, Exception)
                            and c.__module__ == ort_state.__name__)
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=providers)
        except load_errors as e:
            if isinstance(e, ort_state.EPFail):
                raise MissingDependencyError(
                    f"ONNX Runtime's execution provider(s) {', '.join(providers)} failed on {self.path} "
                    f"({_reason(e)}); choose others with --provider (providers=), e.g. CPUExecutionProvider"
                ) from None
            raise BundleError(
                f"ONNX Runtime cannot load the ONNX file {self.path} (onnxruntime {ort.__version__}: {_reason(e)}); "
                "it is truncated, corrupted or not a model this ONNX Runtime supports: re-export it "
                "('edge-se export') or restore the bundle's copy"
            ) from None
        self.providers = self.session.get_providers()
        gpu = any(p != "CPUExecutionProvider" for p in self.providers)
        self.io_binding = gpu if self.options.io_binding is None else bool(self.options.io_binding)
        self.inputs = [self._spec(i) for i in self.session.get_inputs()]
        self.outputs = [self._spec(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    @staticmethod
    def _spec(node) -> TensorSpec:
        dtype = _ORT_DTYPES.get(node.type)
        if dtype is None:
            raise BundleError(f"model tensor {node.name!r} has type {node.type}, which the runtime does not support")
        shape = dims_from(node.shape)
        batch_range = (shape[0], shape[0]) if shape and shape[0] is not None else (1, None)
        return TensorSpec(node.name, shape, np.dtype(dtype), batch_range)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if not self.io_binding:
            return self.session.run(self._output_names, dict(feeds))
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        for name in self._output_names:
            binding.bind_output(name)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def describe(self) -> dict:
        import onnxruntime as ort

        o = self.options
        return {
            "backend": self.name,
            "version": ort.__version__,
            "providers": list(self.providers),
            "intra_op_threads": o.intra_op_threads,
            "inter_op_threads": o.inter_op_threads,
            "graph_optimization": o.graph_optimization + (" (pre-optimized, from the cache)" if self.preoptimized else ""),
            "execution_mode": o.execution_mode,
            "io_binding": self.io_binding,
        }

    def close(self) -> None:
        self.session = None
