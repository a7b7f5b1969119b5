"""``--calib`` given a plain folder of images or a ``.npy``/``.npz`` of preprocessed tensors, with the bundle's
recorded preprocessing: on bundles the export stage wrote, through the real quantize stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_se.calibration.build import calibration_from
from edge_se.cli import main
from edge_se.errors import CalibrationError
from edge_se.preprocess import PreprocessSpec, preprocess_image


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    b = tmp_path_factory.mktemp("plain") / "se_digits"
    assert main(["-q", "export", "se_digits", "--out", str(b)]) == 0
    return b


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """48 real digits saved as PNG files, one subfolder per digit class, as a user's folder would be."""
    from edge_se.data.digits import digit_to_image, raw_digits

    images, target = raw_digits()
    root = tmp_path_factory.mktemp("photos")
    for i in range(48):
        (root / f"class_{target[i]}").mkdir(exist_ok=True)
        digit_to_image(images[i]).save(root / f"class_{target[i]}" / f"{i:03d}.png")
    return root


def _spec(bundle: Path) -> PreprocessSpec:
    return PreprocessSpec.from_dict(json.loads((bundle / "manifest.json").read_text())["preprocessing"])


def _quantize(bundle: Path, calib: Path, tmp_path: Path) -> tuple[int, dict]:
    import shutil

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    rc = main(["-q", "quantize", str(b), "--precision", "int8", "--calib", str(calib), "--policy", "keep-gates",
               "--weight-rounding", "nearest"])
    return rc, json.loads((b / "manifest.json").read_text())


def test_an_image_folder_is_preprocessed_exactly_as_the_runtime_does(bundle, digit_folder, tmp_path):
    spec = _spec(bundle)
    calib = calibration_from(digit_folder, tmp_path, preprocessing=spec)
    assert calib.count == 48 and calib.classes == sorted({p.name for p in digit_folder.iterdir()})
    by_path = {s["path"]: i for i, s in enumerate(calib.manifest["samples"])}
    x = calib.array()
    for rel, i in by_path.items():
        np.testing.assert_array_equal(x[i], preprocess_image(digit_folder / rel, spec))


def test_quantize_calibrates_on_a_plain_image_folder(bundle, digit_folder, tmp_path, capsys):
    rc, m = _quantize(bundle, digit_folder, tmp_path)
    assert rc == 0
    record = m["artifacts"]["model.int8.trt.onnx"]["calibration"]
    assert record["count"] == 48 and record["source"]["kind"] == "folder"
    assert record["source"]["root"] == str(digit_folder.resolve())


def test_quantize_calibrates_on_preprocessed_tensors_with_labels(bundle, digit_folder, tmp_path):
    spec = _spec(bundle)
    files = sorted(digit_folder.rglob("*.png"))
    x = np.stack([preprocess_image(p, spec) for p in files])
    labels = np.array([int(p.parent.name.split("_")[1]) for p in files])
    npz = tmp_path / "calib.npz"
    np.savez(npz, inputs=x, labels=labels)
    calib = calibration_from(npz, tmp_path / "c", preprocessing=spec)
    np.testing.assert_array_equal(calib.array(), x)
    np.testing.assert_array_equal(calib.labels, labels)
    npy = tmp_path / "calib.npy"
    np.save(npy, x)
    rc, m = _quantize(bundle, npy, tmp_path)
    assert rc == 0 and m["artifacts"]["model.int8.trt.onnx"]["calibration"]["source"]["kind"] == "tensors"


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled objects"),
    (lambda d: np.save(d / "obj.npy", np.zeros((4, 32, 32), np.float32)), "N x C x H x W"),
    (lambda d: np.save(d / "obj.npy", np.full((2, 1, 32, 32), np.nan, np.float32)), "NaN"),
    (lambda d: np.savez(d / "obj.npz", a=np.zeros((2, 1, 32, 32), np.float32), b=np.zeros(2)), "one input array"),
    (lambda d: (d / "obj").mkdir(), "holds no images"),
])
def test_bad_tensor_files_and_empty_folders_are_one_line_errors(bundle, tmp_path, capsys, make, message):
    make(tmp_path)
    target = next(p for p in tmp_path.iterdir() if p.name.startswith("obj"))
    assert main(["quantize", str(bundle), "--precision", "int8", "--calib", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_folder_without_the_bundles_preprocessing_is_not_guessed(digit_folder, tmp_path):
    with pytest.raises(CalibrationError, match="not a calibration set"):
        calibration_from(digit_folder, tmp_path)
