"""This CPU: its model name, its feature flags and what they allow (no torch, no OpenVINO).

Used to key caches and saved backend choices to the machine they were made on, and to refuse a
BF16 run on a CPU without BF16 instructions with the instruction sets it lacks.
"""

from __future__ import annotations

import functools
import hashlib
import platform

#: x86 instruction sets that run BF16 arithmetic (OpenVINO's CPU plugin uses either)
BF16_ISA = ("avx512_bf16", "amx_bf16")
#: x86 instruction sets whose INT8 dot product accumulates in 32 bits (no int16 saturation)
INT8_DOT_ISA = ("avx512_vnni", "avx_vnni", "amx_int8")
#: flags that decide which kernels a CPU backend picks (recorded with a saved choice)
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd",
                "asimddp", "bf16", "i8mm", "sve")


def _cpuinfo_line(*prefixes: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(prefixes):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    return _cpuinfo_line("model name", "Model", "Hardware") or platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where the OS does not list them)."""
    return frozenset(_cpuinfo_line("flags", "Features").split())


def machine_tag() -> str:
    """A short hash of the CPU architecture and all its feature flags."""
    return hashlib.sha256(f"{platform.machine()}|{' '.join(sorted(cpu_flags()))}".encode()).hexdigest()[:12]


def fingerprint() -> dict[str, object]:
    """What a saved measurement depends on: CPU model, architecture, the kernel-relevant flags."""
    return {"cpu": cpu_model(), "machine": platform.machine(),
            "isa": sorted(f for f in KERNEL_FLAGS if f in cpu_flags())}


def missing_bf16(flags: frozenset[str] | None = None) -> str | None:
    """``None`` when ``flags`` (default: this CPU's) hold a BF16 instruction set, or list nothing;
    else a phrase naming what is missing."""
    flags = cpu_flags() if flags is None else flags
    if not flags or any(f in flags for f in BF16_ISA):
        return None
    return f"this CPU ({cpu_model()}) has neither {' nor '.join(BF16_ISA)}"


def int8_saturation_risk(flags: frozenset[str] | None = None) -> str | None:
    """A phrase when ``flags`` (default: this CPU's) are an x86 CPU with AVX2 but no VNNI/AMX, else None.

    There, ONNX Runtime's and OpenVINO's INT8 kernels multiply uint8 by int8 with ``pmaddubsw``,
    which adds pairs of products into int16 and saturates: 8-bit weights against large
    activations lose 6-8 dB of logit SQNR (measured on an AVX2-only AMD EPYC). 7-bit weights
    (``reduce_range``) cannot saturate; ARM and VNNI CPUs are not affected.
    """
    flags = cpu_flags() if flags is None else flags
    if not flags or "avx2" not in flags or any(f in flags for f in INT8_DOT_ISA):
        return None
    return f"this CPU ({cpu_model()}) has AVX2 but no VNNI, whose INT8 kernels saturate int16 sums"
