"""What ran the validation: the machine and the tool versions (recorded in ``report.json``)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from edge_se.runtime.cpu import cpu_model

TOOLS = ("edge-se", "numpy", "onnx", "onnxruntime", "torch", "torchvision", "onnxslim", "timm", "matplotlib", "tensorrt")


def machine_info() -> dict[str, Any]:
    """OS, CPU model, logical cores (and those this process may use), memory, Python."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that matter for the numbers (absent ones left out)."""
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
