"""TensorRT versions, version ranges, targets and the two eras.

TensorRT 8.5-10.x ("classic" era: JetPack 5 ships 8.5, JetPack 6.1/6.2 ship 10.3) has FP16/INT8
builder flags, implicit-INT8 calibrators and layer precisions. TensorRT 11.x and TensorRT for
RTX ("strongly typed" era) removed them: precision lives in the ONNX graph (Cast nodes for FP16,
Q/DQ for INT8). Nothing here imports TensorRT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

from edge_se.errors import InputError

Version = Tuple[int, ...]  # typing.Tuple: evaluated at import (Python 3.8)

#: Oldest TensorRT edge-se builds with (JetPack 5's).
MIN_SUPPORTED: Version = (8, 5)
#: First TensorRT with no calibrators / precision flags.
STRONGLY_TYPED_FROM: Version = (11, 0)
#: TensorRT versions with no DLA on Jetson: [11.0, 11.4.1). NVIDIA's "Working with DLA" (11.4.1):
#: "DLA was unavailable in TensorRT 11.0 through 11.3 ... TensorRT 11.4.0 supported DLA only on
#: Windows on ARM"; the 11.4.1 release notes: "TensorRT 11.4.1 supports DLA on NVIDIA Jetson AGX
#: Orin when using NVIDIA JetPack 7.2.2 or later". 10.x (JetPack 6) keeps DLA.
#: https://docs.nvidia.com/deeplearning/tensorrt/11.4.1/inference-library/work-with-dla.html
#: https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/release-notes-11/11.4.1.html
DLA_GAP = ((11, 0), (11, 4, 1))

CLASSIC = "classic"
STRONGLY_TYPED = "strongly-typed"


def parse_version(text: str) -> Version:
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)``; refuses anything that is not dotted integers."""
    text = str(text).strip()
    if not re.fullmatch(r"\d+(\.\d+){0,3}", text):
        raise InputError(f"TensorRT version {text!r} is not a dotted version such as 10.3 or 8.5.2")
    return tuple(int(p) for p in text.split("."))


def format_version(v: Version) -> str:
    return ".".join(str(p) for p in v)


def parse_version_option(text: str) -> Version:
    """A TensorRT version as an option takes it: dotted (``10.3``, ``8.6.1``), or the legacy
    ``NV_TENSORRT_VERSION`` number of a cache header (``8601`` -> 8.6.1, ``100300`` -> 10.3.0)."""
    text = str(text).strip()
    if re.fullmatch(r"\d{4,6}", text):
        n = int(text)
        if 1000 <= n < 10000:  # 8.x: major * 1000 + minor * 100 + patch
            return (n // 1000, n // 100 % 10, n % 100)
        if n >= 100000:  # 10.x and later: major * 10000 + minor * 100 + patch
            return (n // 10000, n // 100 % 100, n % 100)
        raise InputError(f"TensorRT version {text!r} is not a dotted version such as 10.3 or 8.6 "
                         "(nor a 4- or 6-digit version number such as 8601 or 100300)")
    return parse_version(text)


def version_number(v: Version) -> str:
    """``NV_TENSORRT_VERSION`` of ``v``, as a calibration cache header spells it: 8.6.1 -> ``8601``,
    10.3 -> ``100300`` (TensorRT 10 widened the minor and patch fields)."""
    major, minor, patch = (tuple(v) + (0, 0, 0))[:3]
    if minor > 99 or patch > 99 or (major < 10 and minor > 9):
        raise InputError(f"TensorRT version {format_version(v)} has no NV_TENSORRT_VERSION number")
    return str(major * (10000 if major >= 10 else 1000) + minor * 100 + patch)


def _cmp(a: Version, b: Version) -> int:
    """Compare versions on the length of ``b`` (so 10.3.0.26 == 10.3)."""
    a = tuple(a[: len(b)]) + (0,) * max(0, len(b) - len(a))
    return (a > b) - (a < b)


_OPS = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
}


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of clauses such as ``">=10.3,<10.4"`` (``==10.3`` matches 10.3.x)."""

    text: str
    clauses: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> "VersionRange":
        clauses = []
        for part in str(text).split(","):
            m = re.fullmatch(r"\s*(>=|<=|==|>|<)\s*([\d.]+)\s*", part)
            if not m:
                raise InputError(
                    f"TensorRT version range {text!r}: clause {part.strip()!r} is not like '>=10.3' "
                    "(operators: >=, <=, >, <, ==; clauses joined by commas)"
                )
            clauses.append((m.group(1), parse_version(m.group(2))))
        return cls(text=str(text), clauses=tuple(clauses))

    def contains(self, version: Version) -> bool:
        return all(_OPS[op](_cmp(version, v)) for op, v in self.clauses)

    def admits_any(self, versions: list[Version]) -> list[Version]:
        """The members of ``versions`` inside the range."""
        return [v for v in versions if self.contains(v)]

    def __str__(self) -> str:
        return self.text


#: Released TensorRT minor versions edge-se knows of (for range reasoning); 8.5 ... 11.4.
KNOWN_VERSIONS: list[Version] = (
    [(8, 5), (8, 6)]
    + [(10, m) for m in range(0, 17)]
    + [(11, m) for m in range(0, 5)]
    + [(11, 4, 1)]  # the first 11.x with DLA on Jetson Orin (DLA_GAP)
)


def era(version: Version, flavor: str = "tensorrt") -> str:
    """``classic`` (8.5-10.x) or ``strongly-typed`` (11.x, and every TensorRT for RTX)."""
    if flavor == "tensorrt_rtx":
        return STRONGLY_TYPED
    if _cmp(version, MIN_SUPPORTED) < 0:
        raise InputError(
            f"TensorRT {format_version(version)} is older than {format_version(MIN_SUPPORTED)}, the oldest "
            "edge-se builds with; upgrade TensorRT (JetPack 5 ships 8.5)"
        )
    return STRONGLY_TYPED if _cmp(version, STRONGLY_TYPED_FROM) >= 0 else CLASSIC


def calibration_cache_version(text: str, option: str = "--trt-cache-version") -> str:
    """The cache header number for a TensorRT version (``8.6.1`` or ``8601`` -> ``8601``, ``10.3`` ->
    ``100300``); refused for 11.x and later, which have no calibrators."""
    version = parse_version_option(text)
    if era(version) != CLASSIC:
        raise InputError(f"{option} {text}: TensorRT 11 and later have no calibrators, so no calibration cache; "
                         "give the 8.5-10.x version that builds with it (e.g. 10.3)")
    return version_number(version)


def has_dla_support(version: Version) -> bool:
    lo, hi = DLA_GAP
    return not (_cmp(version, lo) >= 0 and _cmp(version, hi) < 0)


@dataclass(frozen=True)
class Target:
    """A deployment target: what the hardware can do and which TensorRT its OS ships."""

    name: str
    description: str
    dla_cores: int
    int8: bool
    fp16: bool
    compute_capability: str | None
    #: TensorRT versions the target's supported OS images ship (None: any, e.g. desktop).
    shipped: tuple[Version, ...] | None
    shipped_note: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "jetson-orin", "Jetson AGX Orin / Orin NX / Orin Nano (Ampere, sm_87, 2 DLA on AGX/NX)",
            dla_cores=2, int8=True, fp16=True, compute_capability="8.7",
            shipped=((8, 5), (8, 6), (10, 3)),
            shipped_note="JetPack 5 ships TensorRT 8.5, JetPack 6.0 ships 8.6, JetPack 6.1/6.2 ship 10.3",
        ),
        Target(
            "jetson-xavier", "Jetson AGX Xavier / Xavier NX (Volta, sm_72, 2 DLA)",
            dla_cores=2, int8=True, fp16=True, compute_capability="7.2",
            shipped=((8, 5),), shipped_note="JetPack 5 (the last for Xavier) ships TensorRT 8.5",
        ),
        Target(
            "jetson-nano", "Jetson Nano (Maxwell, sm_53: FP16, no INT8, no DLA)",
            dla_cores=0, int8=False, fp16=True, compute_capability="5.3",
            shipped=((8, 2),),
            shipped_note="JetPack 4.6 (the last for Jetson Nano) ships TensorRT 8.2",
        ),
        Target(
            "desktop", "x86-64 or SBSA workstation/server GPU (no DLA)",
            dla_cores=0, int8=True, fp16=True, compute_capability=None, shipped=None,
        ),
    ]
}


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise InputError(f"unknown target {name!r}; valid targets: {', '.join(TARGETS)}") from None
