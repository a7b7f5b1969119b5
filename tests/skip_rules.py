"""Which skip reasons CI accepts (tests/conftest.py applies it with EDGE_SE_STRICT_SKIPS=1)."""

from __future__ import annotations

import re

#: skip reasons that name missing hardware or a job of its own (scripts/ci_*.sh); with
#: EDGE_SE_STRICT_SKIPS=1 (.ci/run) any other skip fails the run: a test that skips because of a
#: missing extra the test install has, or a wrong probe, is a test that never runs
ALLOWED_SKIPS = re.compile(
    r"GPU|NVIDIA|needs TensorRT|TensorRT and a GPU are present|TensorRT for RTX|EDGE_SE_TRT_MODELS|EDGE_SE_TRT_SOURCE|"
    r"executorch|pytriton|EDGE_SE_TRITON_BUNDLE|tritonclient\[all\]|Chromium|root \(or non-POSIX\)|BF16 instructions|"
    r"no shared libpython|PyPI not reachable|compiler|gcc|g\+\+|C\+\+",
    re.I,
)
