"""Run a serialized TensorRT engine on numpy arrays with Polygraphy's ``TrtRunner``.

``TensorRTRunner(engine).activate()`` checks the engine's sidecar against this machine first (what
differs, and the command that rebuilds it), puts a DLA engine on the core it was built for, then
deserializes with Polygraphy's ``EngineFromBytes``. ``TrtRunner`` does the rest on every TensorRT
from 8.5 and on TensorRT for RTX: input shapes, ``polygraphy.cuda`` buffers and streams,
``execute_async_v3``. The profile check and the dtype table are edge-se's. Imports TensorRT and
Polygraphy lazily; probes the CUDA device before making a ``trt.Runtime``.
Not run on a GPU here (no GPU on the development machine); its tests are marked ``gpu``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from edge_se.errors import ExecutionError, InputError

#: TensorRT API called here directly (TrtRunner's own calls are Polygraphy's), on every version.
TRT_API = {
    "Runtime": ("num_DLA_cores", "DLA_core"),
    "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype",
                    "get_tensor_profile_shape"),
    "TensorIOMode": ("INPUT",),
    "DataType": ("FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"),
}

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
       "BOOL": np.bool_, "UINT8": np.uint8}


def dla_core(sidecar: Optional[Mapping[str, Any]]) -> Optional[int]:
    """The DLA core an engine was built for (``IRuntime.DLA_core`` before deserializing), from its sidecar."""
    core = (sidecar or {}).get("dla_core")
    if core is None:
        return None
    if isinstance(core, bool) or not isinstance(core, int) or core < 0:
        raise InputError(f"engine sidecar dla_core must be a DLA core number, found {core!r:.20}")
    return core


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class TensorRTRunner:
    """Run a serialized engine. Lifecycle: ``activate()`` -> ``infer(feed)``* -> ``deactivate()``.

    Also a context manager. ``check_sidecar=False`` skips the sidecar check (not recommended).
    """

    def __init__(self, engine: str | Path, *, check_sidecar: bool = True, flavor: Optional[str] = None):
        self.engine_path = Path(engine)
        self.check = check_sidecar
        self.flavor = flavor
        self.sidecar: Optional[Dict[str, Any]] = None
        self._engine = self._runner = self._runtime = None

    # -- lifecycle -----------------------------------------------------------------------
    def activate(self) -> "TensorRTRunner":
        from edge_se.bundle import sha256_file
        from edge_se.runtime.backends.trt_polygraphy import captured, flavor_of, import_polygraphy, load_bindings
        from edge_se.runtime.backends.cuda_device import require_device
        from edge_se.runtime.backends.engine_sidecar import check_sidecar

        purpose = "running a TensorRT engine"
        if not self.engine_path.is_file():
            raise InputError(f"engine {self.engine_path} does not exist; build it with 'edge-se build BUNDLE --recipe RECIPE'")
        self.trt = load_bindings(self.flavor, purpose)
        device = require_device(purpose)  # before any trt.Runtime
        p = import_polygraphy(flavor_of(self.trt), purpose)
        from polygraphy.exception import PolygraphyException

        log: list = []
        with captured(log):
            self._runtime = self.trt.Runtime(p.get_trt_logger())
            if self.check:
                here = {
                    "tensorrt_version": self.trt.__version__, "tensorrt_flavor": flavor_of(self.trt),
                    "compute_capability": device.compute_capability, "gpu_name": device.name,
                    "cuda_version": device.cuda_version, "driver_version": device.driver_version,
                    "engine_sha256": sha256_file(self.engine_path),
                    "dla_cores": int(getattr(self._runtime, "num_DLA_cores", 0) or 0),  # the sidecar's DLA check
                }
                self.sidecar = check_sidecar(self.engine_path, here)
            core = dla_core(self.sidecar)
            if core is not None:  # a DLA engine deserializes onto the core it was built for
                self._runtime.DLA_core = core
            try:
                self._engine = p.EngineFromBytes(self.engine_path.read_bytes(), runtime=self._runtime)()
            except PolygraphyException:
                errors = " | ".join(m for m in log if not m.startswith("WARNING")) or "no error message"
                raise InputError(f"TensorRT {self.trt.__version__} could not load {self.engine_path}: {errors}") from None
        self._start(p)
        return self

    def _start(self, p: Any) -> None:
        """A context of its own on the deserialized engine (Polygraphy's TrtRunner creates it)."""
        self._runner = p.TrtRunner(self._engine, name=self.engine_path.name)
        self._runner.activate()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_in = {n: self._engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_in[n]]
        self.outputs = [n for n in names if not is_in[n]]

    def sibling(self) -> "TensorRTRunner":
        """Another runner on this activated runner's engine, with its own execution context, stream
        and buffers: one deserialized engine, many contexts (an engine may be shared across threads,
        a context may not; the runtime and engine stay referenced while a context uses them)."""
        from edge_se.runtime.backends.trt_polygraphy import flavor_of, import_polygraphy

        if self._engine is None:
            raise InputError("TensorRTRunner.sibling called before activate()")
        other = TensorRTRunner(self.engine_path, check_sidecar=False, flavor=self.flavor)
        other.trt, other.sidecar, other._runtime, other._engine = self.trt, self.sidecar, self._runtime, self._engine
        other._start(import_polygraphy(flavor_of(self.trt), "running a TensorRT engine"))
        return other

    def deactivate(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner = self._engine = self._runtime = None

    def __enter__(self) -> "TensorRTRunner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    # -- inference -----------------------------------------------------------------------
    def profile_shapes(self, name: str) -> Tuple[Tuple[int, ...], ...]:
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

    def _check_shape(self, name: str, shape: Tuple[int, ...]) -> None:
        lo, _, hi = self.profile_shapes(name)
        if len(shape) != len(lo) or any(not a <= s <= b for s, a, b in zip(shape, lo, hi)):
            raise InputError(
                f"input {name!r} of shape {list(shape)} is outside the engine's profile {list(lo)} to {list(hi)}; "
                "rebuild with a wider model.batch/model.resolution range in the recipe"
            )

    def infer(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run one batch; ``feed`` maps every input name to an array; returns every output (copies:
        Polygraphy reuses its host buffers on the next call). A failure inside TensorRT is an
        :class:`ExecutionError` (a runtime failure, exit 4), not bad input."""
        from polygraphy.exception import PolygraphyException

        if self._runner is None:
            raise InputError("TensorRTRunner.infer called before activate()")
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise InputError(f"missing inputs {missing}; the engine's inputs are {self.inputs}")
        arrays = {}
        for name in self.inputs:
            arrays[name] = np.ascontiguousarray(feed[name], dtype=self._dtype(name))
            self._check_shape(name, arrays[name].shape)
        try:
            out = self._runner.infer(arrays)
        except PolygraphyException as e:
            raise ExecutionError(f"TensorRT execution failed: {_first_line(e)}") from None
        return {n: np.array(out[n], copy=True) for n in self.outputs}
