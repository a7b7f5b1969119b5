"""Implicit-INT8 calibrators for TensorRT 8.5-10.x, fed from the calibration set.

``make_calibrator`` is Polygraphy's ``Calibrator`` on TensorRT's ``IInt8EntropyCalibrator2`` or
``IInt8MinMaxCalibrator`` (the two algorithms NVIDIA recommends for CNNs; MinMax is what
Ultralytics defaults to after ENTROPY_CALIBRATION_2 collapsed some models). It reads the
calibration cache when one exists (TensorRT then skips calibration) and writes the cache TensorRT
produces. The rest is the cache format: headers, checks, trtexec's copy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge_se.errors import CalibrationError

#: recipe name -> (TensorRT calibrator class, cache header algorithm)
ALGORITHMS = {
    "entropy2": ("IInt8EntropyCalibrator2", "EntropyCalibration2"),
    "minmax": ("IInt8MinMaxCalibrator", "MinMaxCalibration"),
}
#: The TensorRT API this module uses, on the build path ``TRT_PATH`` (``engine.api_paths``): checked
#: against the bindings of each version whose plans calibrate (tests/tensorrt/test_api_surface.py).
TRT_API = {"IInt8EntropyCalibrator2": (), "IInt8MinMaxCalibrator": ()}
TRT_PATH = "calibrator"

_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


def cache_header(data: bytes) -> tuple[str, str] | None:
    """``(version number, algorithm)`` from a cache's first line, or None if it has none."""
    first = data.split(b"\n", 1)[0].decode("ascii", errors="replace").strip()
    m = _HEADER.match(first)
    return (m.group(1), m.group(2)) if m else None


def check_cache(data: bytes, algorithm: str, where: str, version: str | None = None) -> None:
    """Refuse a cache written for another calibration algorithm, or (``version``: the TensorRT
    that reads it, dotted) for another TensorRT version: TensorRT would ignore it and calibrate on
    whatever data it has."""
    from edge_se.tensorrt.versions import parse_version, version_number

    header = cache_header(data)
    if header is None:
        raise CalibrationError(f"{where} is not a TensorRT calibration cache (first line is not 'TRT-<ver>-<algo>')")
    if version is not None:
        want_number = version_number(parse_version(version)[:3])
        if header[0] != want_number:
            raise CalibrationError(
                f"{where} was written for TensorRT {header[0]} (its header), this is TensorRT {version} "
                f"(header {want_number}); TensorRT would ignore it. Re-run 'edge-se quantize BUNDLE --precision int8 "
                f"--trt-cache-version {'.'.join(version.split('.')[:3])}'"
            )
    want = ALGORITHMS[algorithm][1]
    if header[1] != want:
        raise CalibrationError(
            f"{where} was written by {header[1]} but the recipe's calibrator is {algorithm} ({want}); TensorRT "
            "would ignore it. Set precision.calibrator to match, or delete the cache to recalibrate"
        )


#: the calibrator trtexec builds with (``RndInt8Calibrator : IInt8EntropyCalibrator2`` in its
#: sampleEngines.cpp since TensorRT 8): it reads a ``--calib`` cache only under this header
TRTEXEC_ALGORITHM = "entropy2"


def for_trtexec(data: bytes, version: str, where: str) -> bytes:
    """The same scales under the header trtexec's calibrator reads for TensorRT ``version``.

    TensorRT takes a cache only when its header names the calibrator's algorithm and the running
    version; trtexec's calibrator is Entropy2 whatever the recipe says, so a MinMax cache (or one
    for another version) would be ignored and trtexec would calibrate on random data. The per-tensor
    scales below the header are what the build uses either way.
    """
    from edge_se.tensorrt.versions import parse_version, version_number

    if cache_header(data) is None:
        raise CalibrationError(f"{where} is not a TensorRT calibration cache (first line is not 'TRT-<ver>-<algo>')")
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    number = version_number(parse_version(version)[:3])
    return f"TRT-{number}-{ALGORITHMS[TRTEXEC_ALGORITHM][1]}\n".encode("ascii") + body


class CalibrationBatches:
    """Polygraphy data loader: ``{input: float32 NCHW batch}`` from the calibration set, full batches
    only (a short last batch ends calibration, as TensorRT needs full ones).

    It is read inside TensorRT's ``get_batch`` callback, where Polygraphy catches only its own
    exceptions: so it never raises there. A failure ends calibration and is kept for
    :meth:`raise_error`, which the build calls after TensorRT returns.
    """

    def __init__(self, batches: Iterable[np.ndarray] | None, batch_size: int, input_name: str) -> None:
        self.batches, self.batch_size, self.input_name = batches, batch_size, input_name
        self.input_metadata: Any = None  # set by Polygraphy: the network's calibration inputs
        self.used = 0
        self.error: Exception | None = None

    def _name(self) -> str:
        names = list(self.input_metadata or ())
        return names[0] if len(names) == 1 else self.input_name

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self.batches is None:
            self.error = CalibrationError(
                "TensorRT asked for calibration data but there is no calibration set (and no usable cache); "
                "pass --calib (a calibration set folder) or run 'edge-se quantize --precision int8'"
            )
            return
        try:
            for batch in self.batches:
                if len(batch) != self.batch_size:
                    return
                self.used += 1
                yield {self._name(): np.ascontiguousarray(batch, dtype=np.float32)}
        except Exception as e:  # noqa: BLE001 -- inside TensorRT's callback: kept, raised after the build
            self.error = e

    def raise_error(self) -> None:
        """Raise what went wrong while TensorRT read the batches, if anything did."""
        if isinstance(self.error, CalibrationError):
            raise self.error
        if self.error is not None:
            raise CalibrationError(f"reading the calibration set failed during calibration: "
                                   f"{type(self.error).__name__}: {self.error}") from self.error


def make_calibrator(
    trt: Any,
    algorithm: str,
    batches: Iterable[np.ndarray] | None,
    batch_size: int,
    cache_in: bytes | None,
    cache_out: Path | None,
    input_name: str = "input",
) -> Any:
    """Polygraphy's ``Calibrator`` on TensorRT's ``algorithm`` base class, fed from ``batches``
    (float32 NCHW arrays of ``batch_size``); ``.data_loader`` is the :class:`CalibrationBatches`.

    TensorRT reads the cache at ``cache_out`` (seeded with ``cache_in``: a valid one skips
    calibration) and writes the scales it computes there.
    """
    from edge_se.runtime.backends.trt_polygraphy import flavor_of, import_polygraphy

    p = import_polygraphy(flavor_of(trt))
    if cache_in is not None:
        if cache_out is None:
            raise CalibrationError("a calibration cache to read needs a cache path to write (cache_out)")
        from edge_se.bundle import atomic_write_bytes

        atomic_write_bytes(cache_out, cache_in)
    loader = CalibrationBatches(batches, batch_size, input_name)
    base = {"entropy2": trt.IInt8EntropyCalibrator2, "minmax": trt.IInt8MinMaxCalibrator}[algorithm]  # ALGORITHMS' classes
    return p.Calibrator(loader, cache=str(cache_out) if cache_out is not None else None, BaseClass=base)
