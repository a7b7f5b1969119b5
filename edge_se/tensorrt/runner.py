"""TensorRT runtime backend: deserialize an engine and run it on numpy arrays.

``TensorRTRunner(engine).activate()`` checks the engine's sidecar against this machine first
(what differs, and the command that rebuilds it), then deserializes. ``infer`` sets input shapes
within the optimization profile and runs with ``set_tensor_address`` + ``execute_async_v3`` on
TensorRT >= 10, or with bindings + ``execute_async_v2`` on 8.x. Buffers go through cuda-python
(or torch). Imports TensorRT lazily; probes the CUDA device before making a ``trt.Runtime``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edge_se.errors import ExecutionError, InputError

#: TensorRT API used by the runner, per path ("v3": >= 10, "v2": 8.x).
TRT_API: dict[str, dict[str, tuple[str, ...]]] = {
    "common": {
        "Runtime": ("deserialize_cuda_engine", "num_DLA_cores", "DLA_core"),
        "ICudaEngine": ("create_execution_context", "num_io_tensors", "get_tensor_name", "get_tensor_mode",
                        "get_tensor_dtype", "get_tensor_profile_shape"),
        "TensorIOMode": ("INPUT", "OUTPUT"),
        "DataType": ("FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"),
        "ILogger": ("log", "Severity"),
    },
    "v3": {
        "IExecutionContext": ("set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3"),
        "DataType": ("INT64",),
    },
    "v2": {
        "ICudaEngine": ("num_bindings", "get_binding_index", "binding_is_input"),
        "IExecutionContext": ("set_binding_shape", "get_binding_shape", "execute_async_v2"),
    },
}

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
       "BOOL": np.bool_, "UINT8": np.uint8}


def api_path(version: tuple[int, ...], flavor: str = "tensorrt") -> str:
    """``v3`` (tensor addresses, execute_async_v3) from TensorRT 10 and on every TensorRT for RTX
    (versioned 1.x, with no bindings API at all), ``v2`` (bindings) on TensorRT 8.x."""
    return "v3" if flavor == "tensorrt_rtx" or version >= (10, 0) else "v2"


def dla_core(sidecar: Mapping[str, Any] | None) -> int | None:
    """The DLA core an engine was built for (``IRuntime.DLA_core`` before deserializing), from its sidecar."""
    core = (sidecar or {}).get("dla_core")
    if core is None:
        return None
    if isinstance(core, bool) or not isinstance(core, int) or core < 0:
        raise InputError(f"engine sidecar dla_core must be a DLA core number, found {core!r:.20}")
    return core


def _logger(trt: Any, sink: list[str]) -> Any:
    """A ``trt.ILogger`` keeping warnings and errors in ``sink``."""
    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                sink.append(f"{getattr(severity, 'name', severity)}: {msg}")

    return Logger()


class TensorRTRunner:
    """Run a serialized engine. Lifecycle: ``activate()`` -> ``infer(feed)``* -> ``deactivate()``.

    Also a context manager. ``check_sidecar=False`` skips the sidecar check (not recommended).
    """

    def __init__(self, engine: str | Path, *, check_sidecar: bool = True, flavor: str | None = None):
        self.engine_path = Path(engine)
        self.check = check_sidecar
        self.flavor = flavor
        self.sidecar: dict[str, Any] | None = None
        self._engine = self._context = self._stream = None
        self._buffers: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def activate(self) -> "TensorRTRunner":
        from edge_se.bundle import sha256_file
        from edge_se.tensorrt._import import import_tensorrt
        from edge_se.tensorrt.cuda import Stream, require_device
        from edge_se.tensorrt.sidecar import check_sidecar

        if not self.engine_path.is_file():
            raise InputError(f"engine {self.engine_path} does not exist; build it with 'edge-se build BUNDLE --recipe RECIPE'")
        found = import_tensorrt(self.flavor, purpose="running a TensorRT engine")
        device = require_device("running a TensorRT engine")  # before any trt.Runtime
        self.trt, self.path = found.module, api_path(found.version, found.flavor)
        self._log: list[str] = []
        self._runtime = self.trt.Runtime(_logger(self.trt, self._log))
        if self.check:
            here = {
                "tensorrt_version": found.version_text, "tensorrt_flavor": found.flavor,
                "compute_capability": device.compute_capability, "gpu_name": device.name,
                "cuda_version": device.cuda_version, "driver_version": device.driver_version,
                "engine_sha256": sha256_file(self.engine_path),
                "dla_cores": int(getattr(self._runtime, "num_DLA_cores", 0) or 0),  # the sidecar's DLA check
            }
            self.sidecar = check_sidecar(self.engine_path, here)
        core = dla_core(self.sidecar)
        if core is not None:  # a DLA engine deserializes onto the core it was built for
            self._runtime.DLA_core = core
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise InputError(f"TensorRT {found.version_text} could not load {self.engine_path}: {' | '.join(self._log)}")
        self._context = self._engine.create_execution_context()
        self._stream = Stream()
        self.inputs, self.outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            is_in = self._engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            (self.inputs if is_in else self.outputs).append(name)
        return self

    def sibling(self) -> "TensorRTRunner":
        """Another runner on this activated runner's engine, with its own execution context, stream
        and buffers: one deserialized engine, many contexts (an engine may be shared across threads,
        a context may not; the bindings keep the engine alive while a context uses it)."""
        from edge_se.tensorrt.cuda import Stream

        if self._engine is None:
            raise InputError("TensorRTRunner.sibling called before activate()")
        other = TensorRTRunner(self.engine_path, check_sidecar=False, flavor=self.flavor)
        other.trt, other.path, other._log, other.sidecar = self.trt, self.path, self._log, self.sidecar
        other._runtime, other._engine = self._runtime, self._engine
        other._context = self._engine.create_execution_context()
        other._stream = Stream()
        other.inputs, other.outputs = list(self.inputs), list(self.outputs)
        return other

    def deactivate(self) -> None:
        for buf in self._buffers.values():
            buf.free()
        self._buffers.clear()
        if self._stream is not None:
            self._stream.destroy()
        self._context = self._engine = self._stream = None

    def __enter__(self) -> "TensorRTRunner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    # -- inference -----------------------------------------------------------------------
    def profile_shapes(self, name: str) -> tuple[tuple[int, ...], ...]:
        """min, opt, max shapes of input ``name`` in profile 0."""
        return tuple(tuple(s) for s in self._engine.get_tensor_profile_shape(name, 0))

    def dtype(self, name: str) -> np.dtype:
        """The numpy dtype of engine tensor ``name``."""
        return np.dtype(self._dtype(name))

    def _dtype(self, name: str) -> Any:
        dt = self._engine.get_tensor_dtype(name)
        key = getattr(dt, "name", str(dt).split(".")[-1])
        if key not in _NP:
            raise InputError(f"engine tensor {name!r} has type {key}, which numpy buffers cannot hold")
        return _NP[key]

    def _buffer(self, name: str, nbytes: int) -> Any:
        from edge_se.tensorrt.cuda import DeviceBuffer

        buf = self._buffers.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.free()
            buf = self._buffers[name] = DeviceBuffer(nbytes)
        return buf

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        lo, _, hi = self.profile_shapes(name)
        if len(shape) != len(lo) or any(not a <= s <= b for s, a, b in zip(shape, lo, hi)):
            raise InputError(
                f"input {name!r} of shape {list(shape)} is outside the engine's profile {list(lo)} to {list(hi)}; "
                "rebuild with a wider model.batch/model.resolution range in the recipe"
            )

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; ``feed`` maps every input name to an array; returns every output."""
        if self._context is None:
            raise InputError("TensorRTRunner.infer called before activate()")
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise InputError(f"missing inputs {missing}; the engine's inputs are {self.inputs}")
        return self._infer_v3(feed) if self.path == "v3" else self._infer_v2(feed)

    def _infer_v3(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ctx = self._context
        for name in self.inputs:
            arr = np.ascontiguousarray(feed[name], dtype=self._dtype(name))
            self._check_shape(name, arr.shape)
            ctx.set_input_shape(name, arr.shape)
            buf = self._buffer(name, arr.nbytes)
            buf.upload(arr)
            ctx.set_tensor_address(name, buf.ptr)
        outs = {}
        for name in self.outputs:
            out = np.empty(tuple(ctx.get_tensor_shape(name)), dtype=self._dtype(name))
            ctx.set_tensor_address(name, self._buffer(name, out.nbytes).ptr)
            outs[name] = out
        if not ctx.execute_async_v3(self._stream.handle):
            raise ExecutionError(f"TensorRT execution failed: {' | '.join(self._log[-3:])}")
        self._stream.synchronize()
        return {n: self._buffers[n].download(o) for n, o in outs.items()}

    def _infer_v2(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        eng, ctx = self._engine, self._context
        bindings = [0] * eng.num_bindings
        for name in self.inputs:
            arr = np.ascontiguousarray(feed[name], dtype=self._dtype(name))
            self._check_shape(name, arr.shape)
            idx = eng.get_binding_index(name)
            ctx.set_binding_shape(idx, arr.shape)
            buf = self._buffer(name, arr.nbytes)
            buf.upload(arr)
            bindings[idx] = buf.ptr
        outs = {}
        for name in self.outputs:
            idx = eng.get_binding_index(name)
            out = np.empty(tuple(ctx.get_binding_shape(idx)), dtype=self._dtype(name))
            bindings[idx] = self._buffer(name, out.nbytes).ptr
            outs[name] = out
        if not ctx.execute_async_v2(bindings, self._stream.handle):
            raise ExecutionError(f"TensorRT execution failed: {' | '.join(self._log[-3:])}")
        self._stream.synchronize()
        return {n: self._buffers[n].download(o) for n, o in outs.items()}
