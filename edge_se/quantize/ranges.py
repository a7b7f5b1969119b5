"""One calibration run -> per-tensor activation ranges, for every calibration method.

:func:`collect_statistics` runs the FP32 ONNX model once over the calibration batches (ONNX
Runtime, every float activation tensor added as an output) and keeps, per tensor, the exact
min/max and a histogram of ``|x|`` that does not depend on how the set was batched (bins of
power-of-two width, merged exactly when the range grows; at least 2048 bins below the largest value).
Memory is a fixed few KB per tensor whatever the number of images. :meth:`TensorStatistics.ranges` then turns those
statistics into ``(lo, hi)`` ranges with one of the methods below, without running the model
again; every INT8 flavour (TensorRT QDQ, CPU-fast, TensorRT calibration cache) is built from
the same :class:`TensorRanges`.

Methods (thresholds on ``|x|``, applied symmetrically and clipped to the observed min/max):

* ``minmax``: the observed min and max (no clipping).
* ``percentile``: the ``percentile``-th percentile of ``|x|`` (default 99.99).
* ``entropy``: TensorRT's entropy calibration: the threshold whose 128-level quantized
  distribution has the least KL divergence from the histogram below the largest value.
* ``mse``: the threshold that minimises the expected squared error of symmetric INT8
  quantization (rounding error ``s^2/12`` inside the range, ``(|x| - t)^2`` clipping outside).
"""

from __future__ import annotations

import json
from edge_se.bundle import owned_tempdir
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge_se.errors import CalibrationError, InputError

METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.99
NUM_BINS = 4096  # over [0, top): at least 2048 bins (TensorRT's histogram size) below the largest value
_FLOAT_TYPES = (1,)  # onnx.TensorProto.FLOAT


@dataclass
class _Histogram:
    """Running min/max and a histogram of ``|x|``, the same whatever the batching.

    The bins cover ``[0, top)`` where ``top`` is the smallest power of two above every ``|x|`` seen
    so far, in :data:`NUM_BINS` equal bins. Bin widths are powers of two, so a value's bin is computed
    exactly, and when ``top`` grows the old bins merge into the new ones exactly (``2**j`` old bins per
    new bin). The final histogram depends only on the values, never on how they were split into
    batches or in which order they came; memory is :data:`NUM_BINS` counts per tensor.
    """

    lo: float = float("inf")
    hi: float = float("-inf")
    amax: float = 0.0
    top: float = 0.0  # 0 until a non-zero value was seen
    counts: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BINS, dtype=np.float64))

    def add(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        x = x.astype(np.float32, copy=False)
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        a = np.abs(x).ravel()
        m = float(a.max())
        self.amax = max(self.amax, m)
        if m >= self.top and m > 0.0:
            self._grow(m)
        if self.top == 0.0:
            self.counts[0] += a.size
            return
        a *= np.float32(NUM_BINS / self.top)  # a power of two: exact
        self.counts += np.bincount(a.astype(np.int64), minlength=NUM_BINS)

    def _grow(self, m: float) -> None:
        top = float(2.0 ** np.frexp(np.float32(m))[1])  # smallest power of two > m
        if self.top > 0.0:
            merge = int(round(top / self.top))  # 2**j old bins per new bin
            merged = self.counts.reshape(-1, min(merge, NUM_BINS)).sum(axis=1)
            self.counts = np.zeros(NUM_BINS, dtype=np.float64)
            self.counts[: len(merged)] = merged
        self.top = top

    @property
    def _width(self) -> float:
        return self.top / NUM_BINS

    @property
    def _used(self) -> int:
        """Bins up to the largest value (between NUM_BINS/2 and NUM_BINS)."""
        return min(NUM_BINS, max(1, int(np.ceil(self.amax / self._width))))

    # -- thresholds on |x| -------------------------------------------------------------
    def percentile_threshold(self, percentile: float) -> float:
        total = self.counts.sum()
        if total == 0 or self.amax == 0.0:
            return self.amax
        cdf = np.cumsum(self.counts) / total
        i = int(np.searchsorted(cdf, percentile / 100.0))
        return min(self.amax, (i + 1) * self._width)

    def entropy_threshold(self, levels: int = 128, candidates: int = 240) -> float:
        """TensorRT's entropy calibration on the bins up to the largest value: the threshold whose
        ``levels``-level quantized distribution has the least KL divergence from the reference."""
        if self.counts.sum() == 0 or self.amax == 0.0:
            return self.amax
        n = self._used
        counts = self.counts[:n]
        if n <= levels:
            return self.amax
        stride = max(1, (n - levels) // candidates)
        best_i, best_kl = n, np.inf
        for i in list(range(levels, n, stride)) + [n]:
            p = counts[:i].copy()
            p[i - 1] += counts[i:].sum()
            nz = p > 0
            chunk = np.arange(i) * levels // i
            chunk_sum = np.bincount(chunk, weights=counts[:i], minlength=levels)
            chunk_nz = np.bincount(chunk, weights=(counts[:i] > 0).astype(np.float64), minlength=levels)
            q = np.where(counts[:i] > 0, chunk_sum[chunk] / np.maximum(chunk_nz[chunk], 1), 0.0)
            ps, qs = p.sum(), q.sum()
            if qs == 0:
                continue
            pn, qn = p[nz] / ps, q[nz] / qs
            # bins where p > 0 but q == 0 (only the merged tail bin): smooth q
            qn = np.maximum(qn, 1e-12)
            kl = float(np.sum(pn * np.log(pn / qn)))
            if kl < best_kl:
                best_kl, best_i = kl, i
        return min(self.amax, best_i * self._width)

    def mse_threshold(self, qmax: int = 127, candidates: int = 256) -> float:
        if self.counts.sum() == 0 or self.amax == 0.0:
            return self.amax
        n = self._used
        counts = self.counts[:n]
        centers = (np.arange(n) + 0.5) * self._width
        ts = np.linspace(self.amax / candidates, self.amax, candidates)
        s = ts / qmax
        inside = centers[None, :] <= ts[:, None]
        round_err = np.minimum((s**2 / 12.0)[:, None], centers[None, :] ** 2)
        clip_err = (centers[None, :] - ts[:, None]) ** 2
        err = (np.where(inside, round_err, clip_err) * counts[None, :]).sum(1)
        return float(ts[int(np.argmin(err))])


@dataclass(frozen=True)
class TensorRanges:
    """Per-tensor ``(lo, hi)`` activation ranges from one calibration run with one method."""

    method: str
    ranges: dict[str, tuple[float, float]]
    params: dict[str, Any] = field(default_factory=dict)
    samples: int = 0

    def amax(self, name: str) -> float:
        lo, hi = self.ranges[name]
        return max(abs(lo), abs(hi))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": dict(self.params),
            "samples": self.samples,
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in sorted(self.ranges.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorRanges":
        return cls(
            method=d["method"],
            params=dict(d.get("params", {})),
            samples=int(d.get("samples", 0)),
            ranges={k: (float(v[0]), float(v[1])) for k, v in d["ranges"].items()},
        )

    def to_ort_tensors_data(self) -> Any:
        """The ranges as ONNX Runtime's ``TensorsData`` (MinMax kind: the ranges are final)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        data = {
            k: TensorData(lowest=np.array(lo, dtype=np.float32), highest=np.array(hi, dtype=np.float32))
            for k, (lo, hi) in self.ranges.items()
        }
        return TensorsData(CalibrationMethod.MinMax, data)


@dataclass
class TensorStatistics:
    """Histograms of every calibrated tensor from one run; ``ranges(method)`` derives ranges."""

    hists: dict[str, _Histogram]
    samples: int

    def ranges(self, method: str, percentile: float = DEFAULT_PERCENTILE) -> TensorRanges:
        """Ranges by ``method`` (one of :data:`METHODS`)."""
        if method not in METHODS:
            raise InputError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
        if method == "percentile" and not (50.0 < percentile <= 100.0):
            raise InputError(f"percentile must be in (50, 100], got {percentile}")
        out: dict[str, tuple[float, float]] = {}
        for name, h in self.hists.items():
            if method == "minmax":
                t = None
            elif method == "percentile":
                t = h.percentile_threshold(percentile)
            elif method == "entropy":
                t = h.entropy_threshold()
            else:
                t = h.mse_threshold()
            lo, hi = h.lo, h.hi
            if t is not None:
                lo, hi = max(lo, -t), min(hi, t)
            out[name] = (float(lo), float(hi))
        params = {"percentile": percentile} if method == "percentile" else {}
        return TensorRanges(method=method, ranges=out, params=params, samples=self.samples)


def tensor_infos(model: Any) -> dict[str, tuple[int, list[int | None] | None]]:
    """Per tensor, from ONNX shape inference: ``(elem_type, dims)``, a dim ``None`` when symbolic,
    ``dims`` ``None`` when the rank is unknown."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out: dict[str, tuple[int, list[int | None] | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type"):
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] if tt.HasField("shape") else None
            out[vi.name] = (tt.elem_type, dims)
    return out


def activation_tensors(model: Any, infos: dict[str, tuple[int, Any]] | None = None) -> list[str]:
    """Float activation tensors (graph inputs and node outputs, no initializers), in graph order;
    ``infos``: :func:`tensor_infos` of ``model`` when already computed."""
    infos = tensor_infos(model) if infos is None else infos
    types = {name: elem for name, (elem, _) in infos.items()}
    inits = {i.name for i in model.graph.initializer}
    names: list[str] = []
    seen: set[str] = set()
    for vi in model.graph.input:
        if vi.name not in inits and types.get(vi.name) in _FLOAT_TYPES:
            names.append(vi.name)
            seen.add(vi.name)
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for t in node.output:
            if t and t not in seen and t not in inits and types.get(t) in _FLOAT_TYPES:
                names.append(t)
                seen.add(t)
    return names


def _session_for(model: Any, workdir: Path) -> Any:
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    if model.ByteSize() < 1_800_000_000:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    path = workdir / "augmented.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="augmented.onnx.data")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def tensor_values(
    model: Any, names: Iterable[str], batches: Iterable[np.ndarray], chunk: int | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Run ``model`` (a loaded single-input ModelProto; ``names`` are added to its outputs) on ONNX
    Runtime CPU over ``batches``, ``chunk`` samples at a time when given, and yield
    ``(samples, {name: value})`` per run. Models over ~1.8 GB go through external data."""
    import onnx

    input_name = model.graph.input[0].name
    outputs = {o.name for o in model.graph.output}
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    with owned_tempdir("edge-se-tensors-") as tmp:
        sess = _session_for(model, Path(tmp))
        for batch in batches:
            step = chunk or max(len(batch), 1)
            for i in range(0, len(batch), step):
                part = np.ascontiguousarray(batch[i : i + step], dtype=np.float32)
                yield int(part.shape[0]), dict(zip(wanted, sess.run(wanted, {input_name: part})))


def collect_statistics(model_path: str | Path, batches: Iterable[np.ndarray]) -> TensorStatistics:
    """Run the FP32 model over ``batches`` (arrays for its single input) and histogram every tensor."""
    import onnx

    model = onnx.load(str(model_path))
    if len(model.graph.input) != 1:
        raise InputError(
            f"{model_path} has {len(model.graph.input)} inputs; INT8 calibration supports single-input models"
        )
    names = activation_tensors(model)
    hists = {n: _Histogram() for n in names}
    samples = 0
    for count, values in tensor_values(model, names, batches):
        for n, v in values.items():
            hists[n].add(v)
        samples += count
    if samples == 0:
        raise CalibrationError("the calibration set yielded no samples; pass a set with at least one image")
    return TensorStatistics(hists=hists, samples=samples)


def save_ranges(ranges: TensorRanges, path: str | Path) -> None:
    """Write ranges as JSON (atomically)."""
    from edge_se.bundle import atomic_write_json

    atomic_write_json(path, ranges.to_dict())


def load_ranges(path: str | Path) -> TensorRanges:
    """Read ranges written by :func:`save_ranges`."""
    return TensorRanges.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


__all__ = [
    "DEFAULT_PERCENTILE",
    "METHODS",
    "TensorRanges",
    "TensorStatistics",
    "activation_tensors",
    "collect_statistics",
    "tensor_infos",
    "load_ranges",
    "save_ranges",
    "tensor_values",
]
