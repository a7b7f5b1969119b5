"""Implicit-INT8 calibrators for TensorRT 8.5-10.x, fed from the calibration set.

``make_calibrator`` subclasses TensorRT's ``IInt8EntropyCalibrator2`` or ``IInt8MinMaxCalibrator``
(the two algorithms NVIDIA recommends for CNNs; MinMax is what Ultralytics defaults to after
ENTROPY_CALIBRATION_2 collapsed some models). It reads the calibration cache when one exists
(TensorRT then skips calibration) and writes the cache TensorRT produces.
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
#: The TensorRT API this module uses (checked against each version's bindings by the tests).
TRT_API = {"IInt8EntropyCalibrator2": (), "IInt8MinMaxCalibrator": ()}

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


def make_calibrator(
    trt: Any,
    algorithm: str,
    batches: Iterable[np.ndarray] | None,
    batch_size: int,
    cache_in: bytes | None,
    cache_out: Path | None,
) -> Any:
    """A TensorRT calibrator object. ``batches`` yields float32 NCHW arrays of ``batch_size``."""
    from edge_se.tensorrt.cuda import DeviceBuffer

    base = getattr(trt, ALGORITHMS[algorithm][0])

    class Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._it: Iterator[np.ndarray] | None = iter(batches) if batches is not None else None
            self._buf: DeviceBuffer | None = None
            self.batches_used = 0
            self.cache_written: bytes | None = None

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._it is None:
                raise CalibrationError(
                    "TensorRT asked for calibration data but there is no calibration set (and no usable cache); "
                    "pass --calib (a calibration set folder) or run 'edge-se quantize --precision int8'"
                )
            batch = next(self._it, None)
            if batch is None:
                return None
            if len(batch) != batch_size:
                return None  # TensorRT needs full batches; a short last batch ends calibration
            arr = np.ascontiguousarray(batch, dtype=np.float32)
            if self._buf is None:
                self._buf = DeviceBuffer(arr.nbytes)
            self._buf.upload(arr)
            self.batches_used += 1
            return [self._buf.ptr]

        def read_calibration_cache(self) -> bytes | None:
            return cache_in

        def write_calibration_cache(self, cache: Any) -> None:
            data = bytes(cache)
            self.cache_written = data
            if cache_out is not None:
                from edge_se.bundle import atomic_write_bytes

                atomic_write_bytes(cache_out, data)

        def free(self) -> None:
            if self._buf is not None:
                self._buf.free()
                self._buf = None

    return Calibrator()
