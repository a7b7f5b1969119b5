"""TensorRT INT8 calibration cache (the text "calibration table"), written from our ranges.

For implicit-INT8 builds on TensorRT 8.x/10.x (JetPack 5/6), where a calibrator's
``read_calibration_cache()`` returns these bytes and TensorRT skips its own calibration.

Format (what TensorRT's calibrators write and read; one line each, ``\\n`` separated)::

    TRT-8601-EntropyCalibration2
    input: 3c010204
    /stem/conv/Conv_output_0: 3d1c2b1a
    ...

* Line 1, the header: ``TRT-<version>-<algorithm>``. ``<version>`` is TensorRT's
  ``NV_TENSORRT_VERSION`` number (8601 = 8.6.1); ``<algorithm>`` is one of
  ``EntropyCalibration2`` (default), ``EntropyCalibration``, ``MinMaxCalibration``,
  ``LegacyCalibration``. TensorRT ignores a cache whose algorithm differs from the calibrator's,
  so a builder must use a calibrator of the same algorithm (the scales themselves are ours).
* Then one line per tensor: ``<tensor name>: <scale>``, where the tensor name is the ONNX tensor
  name (TensorRT's ONNX parser keeps it) and ``<scale>`` is the float32 **scale** (not the
  dynamic range: range = scale x 127) written as 8 lower-case hex digits of its IEEE-754 bits, most
  significant first (``struct.pack('>f', s).hex()``). Tensor names may contain ``:`` so a line is
  split at its last ``": "``.

Scales are symmetric INT8: ``scale = 2 * amax / 254`` with ``amax = max(|lo|, |hi|)``, computed
exactly as ONNX Runtime computes the QDQ scales, so the cache and the TensorRT QDQ model agree bit
for bit (tested).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_se.errors import CalibrationError
from edge_se.quantize.ranges import TensorRanges

DEFAULT_VERSION = "8601"
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{1,8}$")


def symmetric_scale(lo: float, hi: float) -> np.float32:
    """The symmetric INT8 scale of range [lo, hi], computed as ONNX Runtime does (float64 then float32)."""
    lo32 = np.minimum(np.float32(lo), np.float32(0))
    hi32 = np.maximum(np.float32(hi), np.float32(0))
    absmax = np.maximum(np.abs(lo32), np.abs(hi32))
    scale = np.float32(np.float64(2 * absmax) / np.float64(254))
    if scale < np.finfo(np.float32).tiny:
        return np.float32(1.0)
    return scale


def scale_to_hex(scale: float) -> str:
    """IEEE-754 float32 bits of ``scale`` as 8 hex digits, most significant first."""
    return struct.pack(">f", float(scale)).hex()


def hex_to_scale(text: str) -> np.float32:
    """Inverse of :func:`scale_to_hex` (accepts fewer than 8 digits, as some writers drop zeros)."""
    return np.float32(struct.unpack(">f", int(text, 16).to_bytes(4, "big"))[0])


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed cache: header fields and the scale of each tensor, in file order."""

    version: str
    algorithm: str
    scales: dict[str, np.float32]

    @property
    def header(self) -> str:
        return f"TRT-{self.version}-{self.algorithm}"

    def to_text(self) -> str:
        lines = [self.header] + [f"{name}: {scale_to_hex(s)}" for name, s in self.scales.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_ranges(
        cls, ranges: TensorRanges, version: str = DEFAULT_VERSION, algorithm: str = "EntropyCalibration2"
    ) -> "CalibrationCache":
        """One scale per calibrated tensor from ``ranges``."""
        if algorithm not in ALGORITHMS:
            raise CalibrationError(f"unknown TensorRT calibration algorithm {algorithm!r}; expected one of {ALGORITHMS}")
        if not re.fullmatch(r"\d+", version):
            raise CalibrationError(f"TensorRT version in a cache header must be digits like 8601, got {version!r}")
        scales = {name: symmetric_scale(lo, hi) for name, (lo, hi) in ranges.ranges.items()}
        return cls(version=version, algorithm=algorithm, scales=scales)

    @classmethod
    def parse(cls, text: str, where: str = "calibration cache") -> "CalibrationCache":
        """Parse cache text; errors name the line."""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise CalibrationError(f"{where} is empty; expected a header like TRT-8601-EntropyCalibration2")
        m = _HEADER.match(lines[0].strip())
        if not m:
            raise CalibrationError(
                f"{where} line 1: expected a header like TRT-8601-EntropyCalibration2, got {lines[0][:60]!r}"
            )
        scales: dict[str, np.float32] = {}
        for i, line in enumerate(lines[1:], start=2):
            name, sep, value = line.rpartition(": ")
            if not sep or not name or not _HEX.match(value.strip()):
                raise CalibrationError(f"{where} line {i}: expected '<tensor name>: <8 hex digits>', got {line[:80]!r}")
            scales[name] = hex_to_scale(value.strip())
        return cls(version=m.group(1), algorithm=m.group(2), scales=scales)


def write_cache(path: str | Path, cache: CalibrationCache) -> None:
    """Write ``cache`` to ``path`` atomically."""
    from edge_se.bundle import atomic_write_text

    atomic_write_text(path, cache.to_text())


def read_cache(path: str | Path) -> CalibrationCache:
    """Read and parse a cache file."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration cache {path} does not exist")
    return CalibrationCache.parse(path.read_text(encoding="ascii", errors="replace"), where=str(path))


__all__ = ["ALGORITHMS", "CalibrationCache", "hex_to_scale", "read_cache", "scale_to_hex", "symmetric_scale", "write_cache"]
