"""A TracerWarning while tracing or exporting fails the export, naming the file and line.

``--allow-tracer-warnings`` exports anyway and records the warnings in the manifest; torch's own
shape checks (``torch._assert``) are not counted; and the FP32 check's scaled inputs catch a
branch on the input's scale that the real and noise inputs never take.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from edge_se.cli import main
from edge_se.errors import CheckFailed
from edge_se.export.pipeline import export_bundle

from model_sources import NAN_GUARD

BRANCH_ON_SIGN = """
    import torch, torch.nn as nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.b = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.mean() > 0:  # BRANCH
                return self.a(x).mean((2, 3))
            return self.b(x).mean((2, 3))

    def build():
        return Branchy()
    """



def _model(tmp_path, body: str, name: str = "tw_model.py"):
    path = tmp_path / name
    text = textwrap.dedent(body)
    path.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "# BRANCH" in ln)
    return path, line


def test_branch_on_tensor_value_fails_export_naming_file_and_line(tmp_path, capsys):
    path, line = _model(tmp_path, BRANCH_ON_SIGN)
    out = tmp_path / "b"
    code = main(["-q", "export", f"{path}:build", "--input-shape", "1x3x16x16", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert f"{path}:{line}" in err and "Python boolean" in err
    assert "pass --allow-tracer-warnings to export anyway (recorded in the manifest)" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_allowed_tracer_warning_is_recorded_in_manifest_and_noted(tmp_path, capsys):
    path, line = _model(tmp_path, NAN_GUARD)
    refused = main(["-q", "export", f"{path}:build", "--input-shape", "1x3x16x16", "--out", str(tmp_path / "no")])
    assert refused == 2 and f"{path}:{line}" in capsys.readouterr().err
    out = tmp_path / "b"
    code = main(["export", f"{path}:build", "--input-shape", "1x3x16x16", "--out", str(out), "--allow-tracer-warnings"])
    err = capsys.readouterr().err
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = manifest["model"]["tracer_warnings"]
    assert len(recorded) == 1
    assert recorded[0]["file"] == str(path) and recorded[0]["line"] == line
    assert "Python boolean" in recorded[0]["message"]
    notes = [ln for ln in err.splitlines() if "tracer warning" in ln]
    assert len(notes) == 1 and f"{path}:{line}" in notes[0] and "--allow-tracer-warnings" in notes[0]


def test_torch_assert_shape_check_is_not_counted(tmp_path, capsys):
    # torch._assert bools a traced comparison inside torch/__init__.py: torch's own shape check
    path = tmp_path / "asserty.py"
    path.write_text(textwrap.dedent("""
        import torch, torch.nn as nn

        class Asserty(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                torch._assert(x.shape[2] == 16, "expected 16 rows")
                return self.conv(x).mean((2, 3))

        def build():
            return Asserty()
        """))
    out = tmp_path / "b"
    code = main(["-q", "export", f"{path}:build", "--input-shape", "1x3x16x16", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["model"]["tracer_warnings"] == []


@pytest.mark.parametrize("spec", ["se_digits", "cbam_digits", "sk_digits", "bam_digits"])
def test_zoo_models_trace_without_tracer_warnings(spec, tmp_path, capsys):
    out = tmp_path / spec
    code = main(["-q", "export", spec, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["tracer_warnings"] == []
    assert any(c["name"] == "numerics/scaled/batch1" and c["passed"] for c in manifest["checks"])


def test_branch_on_input_scale_is_caught_by_the_scaled_inputs(tmp_path):
    # real images and N(0,1) noise stay below 5 in magnitude; only the x10 copy takes branch a
    path, _ = _model(tmp_path, BRANCH_ON_SIGN.replace("x.mean() > 0", "x.abs().max() > 5"))
    with pytest.raises(CheckFailed) as info:
        export_bundle(f"{path}:build", (1, 3, 16, 16), tmp_path / "b", allow_tracer_warnings=True)
    failed = str(info.value)
    assert "numerics/scaled/" in failed
    assert "numerics/real/" not in failed and "numerics/random/" not in failed
    assert not (tmp_path / "b").exists()
