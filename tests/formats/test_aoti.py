"""AOTInductor packages (``--formats aoti``): validated in the bundle, run by the aoti backend and by
the C++ example, refused when built for another machine or torch, exit 3 without a compiler."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main
from edge_se.errors import BundleError, InputError
from edge_se.export.pipeline import export_bundle
from edge_se.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cpp"


@pytest.fixture(scope="module")
def aoti_bundle(tmp_path_factory):
    from edge_se import progress

    progress.set_quiet(True)
    out = tmp_path_factory.mktemp("aoti") / "b"
    return export_bundle("se_digits", (1, 1, 32, 32), out, formats="onnx,aoti")


def _aoti_checks(bundle):
    return [c for c in bundle.manifest["checks"] if c.get("artifact") == "model.aoti.pt2"]


@pytest.mark.slow
def test_aoti_package_is_validated_and_runs_like_onnx(aoti_bundle):
    rec = aoti_bundle.artifact("model.aoti.pt2")
    assert rec["format"] == "aoti-package" and rec["batch_range"] == [1, 8] and rec["machine"]
    checks = _aoti_checks(aoti_bundle)
    assert {c["batch"] for c in checks} == {1, 4} and all(c["passed"] for c in checks)
    x = np.random.default_rng(5).standard_normal((10, 1, 32, 32)).astype(np.float32)
    with Runtime.load(aoti_bundle.root, backend="onnxruntime") as ort_rt, Runtime.load(aoti_bundle.root, backend="aoti") as rt:
        np.testing.assert_allclose(rt.predict(x), ort_rt.predict(x), atol=1e-4)  # 10 rows: split within 1..8
        with pytest.raises(InputError, match=r"batch 9 is outside the aoti artifact's batch range \[1, 8\]"):
            rt.runner.infer({"input": x[:9]})


def _rewrite_metadata(src: Path, dst: Path, **changes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("wrapper_metadata.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            zout.writestr(item, data)


@pytest.mark.slow
def test_a_package_for_another_machine_isa_or_torch_is_refused_in_one_line(aoti_bundle, tmp_path):
    from edge_se.runtime.backends.torch_export import AotiRunner
    from edge_se.runtime.source import Source

    src = aoti_bundle.root / "model.aoti.pt2"
    rec = aoti_bundle.artifact("model.aoti.pt2")
    source = Source("aoti", src, artifact="model.aoti.pt2", record=rec)
    ins, outs = source.manifest_specs("inputs"), source.manifest_specs("outputs")
    arm = tmp_path / "arm.aoti.pt2"
    _rewrite_metadata(src, arm, AOTI_MACHINE="aarch64")
    with pytest.raises(BundleError, match="was compiled for aarch64, this machine is"):
        AotiRunner(arm, ins, outs, built=rec)
    isa = tmp_path / "isa.aoti.pt2"
    _rewrite_metadata(src, isa, AOTI_CPU_ISA="NEON")
    with pytest.raises(BundleError, match="compiled for the NEON vector ISA, which this CPU lacks"):
        AotiRunner(isa, ins, outs, built=rec)
    with pytest.raises(BundleError, match="compiled with torch 2.13.0, this is torch"):
        AotiRunner(src, ins, outs, built={**rec, "torch": "2.13.0"})


def test_aoti_without_a_cpp_compiler_exits_3_saying_what_to_install(tmp_path, capsys):
    from torch._inductor import config as inductor_config

    out = tmp_path / "b"
    with inductor_config.patch({"cpp.cxx": (None, "no-such-c++")}):
        assert main(["-q", "export", "se_digits", "--out", str(out), "--formats", "onnx,aoti"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no C++ compiler is on PATH (looked for no-such-c++)" in err
    assert "apt install g++" in err and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet18", "cbam_resnet18", "sk_resnet18"])
def test_aoti_builds_and_validates_on_attention_nets(name, tmp_path):
    bundle = export_bundle(name, (1, 3, 32, 32), tmp_path / "b", formats="onnx,aoti", max_batch=4)
    checks = _aoti_checks(bundle)
    assert checks and all(c["passed"] for c in checks), [c["reason"] for c in checks if not c["passed"]]


def _cpp_toolchain_missing() -> str | None:
    if shutil.which("g++") is None:
        return "no g++ on PATH"
    import torch

    header = Path(torch.__file__).parent / "include" / "torch" / "csrc" / "inductor" / "aoti_package" / "model_package_loader.h"
    return None if header.is_file() else f"torch has no C++ headers ({header} missing)"


@pytest.mark.slow
@pytest.mark.skipif(_cpp_toolchain_missing() is not None, reason=str(_cpp_toolchain_missing()))
def test_cpp_example_runs_the_package_like_the_runtime_and_refuses_a_batch_above_its_range(aoti_bundle, tmp_path):
    exe = tmp_path / "aoti_run"
    subprocess.run(["sh", str(EXAMPLE / "build.sh"), str(exe)], check=True, capture_output=True, timeout=600)
    package = aoti_bundle.root / "model.aoti.pt2"
    x = np.random.default_rng(7).standard_normal((3, 1, 32, 32)).astype(np.float32)
    x.tofile(tmp_path / "in.f32")
    run = subprocess.run([str(exe), str(package), str(tmp_path / "in.f32"), str(tmp_path / "out.f32"), "3", "1", "32", "32"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = np.fromfile(tmp_path / "out.f32", np.float32).reshape(3, 10)
    with Runtime.load(aoti_bundle.root, backend="onnxruntime") as rt:
        np.testing.assert_allclose(got, rt.predict(x), atol=1e-4)
    np.zeros((9, 1, 32, 32), np.float32).tofile(tmp_path / "in9.f32")
    big = subprocess.run([str(exe), str(package), str(tmp_path / "in9.f32"), str(tmp_path / "o9.f32"), "9", "1", "32", "32"],
                         capture_output=True, text=True, timeout=120)
    assert big.returncode == 2 and "error: " in big.stderr and "expected to be <= 8, but got: 9" in big.stderr


@pytest.mark.slow
def test_a_bundle_with_pte_runs_on_the_executorch_backend(tmp_path):
    pytest.importorskip("executorch", reason="needs the optional 'executorch' package (1.5.x with torch 2.14.x)")
    bundle = export_bundle("se_digits", (1, 1, 32, 32), tmp_path / "b", formats="onnx,pte")
    rec = bundle.artifact("model.pte")
    assert rec["format"] == "executorch" and rec["batch_range"] == [1, 8]
    checks = [c for c in bundle.manifest["checks"] if c.get("artifact") == "model.pte"]
    assert checks and all(c["passed"] for c in checks)
    x = np.random.default_rng(9).standard_normal((10, 1, 32, 32)).astype(np.float32)
    with Runtime.load(bundle.root, backend="onnxruntime") as ort_rt, Runtime.load(bundle.root, backend="executorch") as rt:
        np.testing.assert_allclose(rt.predict(x), ort_rt.predict(x), atol=1e-4)
