"""The CI rule on skips (tests/conftest.py, EDGE_SE_STRICT_SKIPS=1 in .ci/run): hardware and the
separate jobs may skip a test; a missing extra of the test install or a wrong probe may not."""

from __future__ import annotations

import pytest
from skip_rules import ALLOWED_SKIPS


@pytest.mark.parametrize("reason", [
    "needs TensorRT and an NVIDIA GPU (none here)",
    "needs TensorRT for RTX: pip install tensorrt-rtx-cu12 (scripts/ci_trt_rtx.sh)",
    "needs the optional 'executorch' package (1.5.x with torch 2.14.x)",
    "needs nvidia-pytriton (its tritonserver); run scripts/ci_triton.sh",
    "this CPU has no BF16 instructions (AVX512_BF16 or AMX)",
    "Chromium is not installed (apt-get install -y chromium); scripts/screenshot_report.sh needs it",
])
def test_hardware_and_separate_jobs_may_skip(reason):
    assert ALLOWED_SKIPS.search(reason)


@pytest.mark.parametrize("reason", [
    "could not import 'timm': No module named 'timm'",
    "the openvino extra is not installed (pip install 'edge-se[openvino]')",
    "TensorRT is installed here; this checks the message when it is not",  # the namespace-package probe bug
    "quantize stage not present",
    "needs tritonclient (pip install 'edge-se[serving]')",
])
def test_a_missing_test_extra_or_a_wrong_probe_may_not(reason):
    assert not ALLOWED_SKIPS.search(reason)


def test_a_bare_tensorrt_folder_is_not_tensorrt(tmp_path, monkeypatch):
    from edge_se.errors import MissingDependencyError
    from edge_se.runtime.backends.probe import installed
    from edge_se.tensorrt._import import import_tensorrt

    (tmp_path / "tensorrt").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not installed("tensorrt")
    with pytest.raises(MissingDependencyError, match="pip install 'edge-se\\[tensorrt\\]'"):
        import_tensorrt("tensorrt")


def test_an_installed_namespace_package_counts(tmp_path, monkeypatch):
    """executorch ships without an __init__.py: under site-packages it is installed, elsewhere not."""
    from edge_se.runtime.backends.probe import installed

    (tmp_path / "lib" / "site-packages" / "edge_se_ns_probe").mkdir(parents=True)
    (tmp_path / "work" / "edge_se_ns_bare").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "lib" / "site-packages"))
    monkeypatch.syspath_prepend(str(tmp_path / "work"))
    assert installed("edge_se_ns_probe") and not installed("edge_se_ns_bare")
