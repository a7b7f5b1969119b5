"""Bad input gets a one-line error naming what is wrong, and publishes nothing."""

from __future__ import annotations

import textwrap

import pytest

from edge_se.cli import main
from edge_se.errors import CheckFailed, ExportError, ImagesError, InputError
from edge_se.export.checks import parse_input_shape
from edge_se.export.pipeline import export_bundle


@pytest.mark.parametrize("text", ["1x3x224", "1x3xAx224", "0x3x224x224", "1x5x224x224", ""])
def test_malformed_input_shape_is_refused(text):
    with pytest.raises(InputError, match="--input-shape"):
        parse_input_shape(text)


def test_cli_reports_malformed_shape_on_one_line_with_exit_2(capsys, tmp_path):
    code = main(["export", "se_digits", "--input-shape", "1x3x2o4x224", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "malformed" in err
    assert not (tmp_path / "b").exists()


def test_unknown_model_name_suggests_close_matches(capsys, tmp_path):
    code = main(["export", "se_resnet_18", "--input-shape", "1x3x64x64", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "se_resnet18" in err


@pytest.mark.parametrize("force", [False, True])
def test_existing_folder_that_is_not_a_bundle_is_refused_even_with_force(tmp_path, force):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an edge-se bundle.*never replaces a folder it did not make"):
        export_bundle("se_digits", (1, 1, 32, 32), out, force=force)
    assert (out / "notes.txt").read_text() == "mine"


def test_empty_images_folder_is_refused(tmp_path):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(ImagesError, match="holds no images"):
        export_bundle("se_digits", (1, 1, 32, 32), tmp_path / "b", images=tmp_path / "imgs")


def test_images_folder_with_only_unreadable_images_is_refused(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ImagesError, match="cannot decode image .*broken.jpg"):
        export_bundle("se_digits", (1, 1, 32, 32), tmp_path / "b", images=imgs)
    assert not (tmp_path / "b").exists()


def _user_file(tmp_path, body: str):
    path = tmp_path / "user_model.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_fixed_resolution_model_is_reported_naming_the_module(tmp_path):
    path = _user_file(tmp_path, """
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.Conv2d(3, 8, 3, stride=32, padding=1), nn.AvgPool2d(7), nn.Flatten(), nn.Linear(8, 4))
        """)
    with pytest.raises(ExportError, match=r"module '1' \(AvgPool2d\(kernel_size=7"):
        export_bundle(f"{path}:build", (1, 3, 160, 160), tmp_path / "b")
    bundle = export_bundle(f"{path}:build", (1, 3, 224, 224), tmp_path / "ok")
    assert bundle.manifest["model"]["resolution"] == "fixed"
    assert "AvgPool2d" in bundle.manifest["model"]["fixed_by"]


def test_unexportable_op_is_named(tmp_path):
    path = _user_file(tmp_path, """
        import torch, torch.nn as nn
        class Odd(nn.Module):
            def forward(self, x):
                return torch.linalg.svd(x.flatten(1))[1]
        def build():
            return Odd()
        """)
    with pytest.raises(ExportError, match="svd"):
        export_bundle(f"{path}:build", (1, 3, 8, 8), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_failed_validation_publishes_nothing(tmp_path):
    path = _user_file(tmp_path, """
        import torch, torch.nn as nn
        class Noisy(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
            def forward(self, x):
                y = self.conv(x).mean((2, 3))
                return y + torch.rand_like(y)  # different on every run: no export can match it
        def build():
            return Noisy()
        """)
    with pytest.raises(CheckFailed, match="validation failed, nothing was published"):
        export_bundle(f"{path}:build", (1, 3, 16, 16), tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
