"""Folder sources: real PNG/JPEG files, mode conversion, refusals, selection, manifest, round trip."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from calib_helpers import folder_spec, write_image

from edge_se.bundle import sha256_file
from edge_se.calibration import build_calibration_set, load_calibration_set, load_spec
from edge_se.errors import CalibrationError, IntegrityError
from edge_se.preprocess import preprocess_image


def build(tmp_path: Path, count: int, **kw) -> Path:
    return build_calibration_set(load_spec(folder_spec(tmp_path, count, **kw)), tmp_path / "out")


def test_round_trip_samples_equal_preprocessed_source_files(tmp_path, image_folder):
    calib = load_calibration_set(build(tmp_path, 10))
    assert calib.shape == (10, 3, 16, 16) and calib.count == 10 and calib.dtype == np.float32
    x = calib.array()
    for row, rec in zip(x, calib.manifest["samples"]):
        np.testing.assert_array_equal(row, preprocess_image(image_folder / rec["path"], calib.preprocessing))


def test_labels_are_class_subfolders(tmp_path, image_folder):
    calib = load_calibration_set(build(tmp_path, 14))
    assert calib.classes == ["cat", "dog", "owl"]
    paths = [rec["path"] for rec in calib.manifest["samples"]]
    assert [calib.classes[k] for k in calib.labels] == [p.split("/")[0] for p in paths]


def test_images_directly_in_the_folder_have_no_labels(tmp_path):
    for i in range(3):
        write_image(tmp_path / "images" / f"{i}.png", seed=i)
    calib = load_calibration_set(build(tmp_path, 3))
    assert calib.labels is None and calib.classes is None
    assert not (calib.root / "labels.npy").exists()


def test_stratified_selection_balances_classes(tmp_path, image_folder):
    # cat 6, dog 6, owl 2: 12 samples -> owl gives all it has, the others share the rest
    calib = load_calibration_set(build(tmp_path, 12, method="stratified"))
    assert calib.manifest["counts_per_class"] == {"cat": 5, "dog": 5, "owl": 2}


def test_random_selection_depends_on_the_seed_only(tmp_path, image_folder):
    def files(seed: int, out: str) -> list[str]:
        spec = load_spec(folder_spec(tmp_path, 5, seed=seed))
        calib = load_calibration_set(build_calibration_set(spec, tmp_path / out))
        return [r["path"] for r in calib.manifest["samples"]]

    first = files(0, "a")
    assert first == files(0, "b")
    assert first != files(1, "c")


def test_grayscale_rgba_cmyk_and_palette_images_are_converted_and_counted(tmp_path, caplog, monkeypatch):
    import logging

    from edge_se import progress

    monkeypatch.setattr(progress, "_silenced", False)  # the suite's fixtures silence notes
    caplog.set_level(logging.INFO, logger="edge_se")
    root = tmp_path / "images"
    write_image(root / "rgb.png", "RGB")
    write_image(root / "gray.png", "L")
    write_image(root / "alpha.png", "RGBA")
    write_image(root / "cmyk.jpg", "CMYK")
    write_image(root / "palette.gif", "P")
    calib = load_calibration_set(build(tmp_path, 5))
    conv = calib.manifest["converted"]
    assert conv == {"to": "RGB", "count": 4, "by_mode": {"CMYK": 1, "L": 1, "P": 1, "RGBA": 1}}
    assert "converted 4 images to RGB: 1 CMYK, 1 L, 1 P, 1 RGBA" in caplog.text  # a note of the edge_se logger
    modes = {r["path"]: r["mode"] for r in calib.manifest["samples"]}
    assert modes["cmyk.jpg"] == "CMYK" and modes["gray.png"] == "L"
    assert calib.shape == (5, 3, 16, 16)


def test_manifest_hashes_source_files_spec_and_shards(tmp_path, image_folder):
    spec_path = folder_spec(tmp_path, 6)
    calib = load_calibration_set(build_calibration_set(load_spec(spec_path), tmp_path / "out"))
    m = calib.manifest
    assert m["spec"]["sha256"] == hashlib.sha256(spec_path.read_bytes()).hexdigest()
    for rec in m["samples"]:
        assert rec["sha256"] == sha256_file(image_folder / rec["path"])
    for shard in m["shards"]:
        assert shard["sha256"] == sha256_file(calib.root / shard["path"])
    assert calib.sha256 == sha256_file(calib.root / "manifest.json")
    assert m["preprocessing"]["crop"] == [16, 16] and m["selection"]["seed"] == 0 and m["created"]


def test_a_changed_shard_is_detected_on_load(tmp_path, image_folder):
    out = build(tmp_path, 4)
    arr = np.load(out / "shard_00000.npy")
    np.save(out / "shard_00000.npy", arr + 1)
    with pytest.raises(IntegrityError, match="shard_00000.npy"):
        load_calibration_set(out)


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationError, match="holds no images"):
        build(tmp_path, 4)
    assert not (tmp_path / "out").exists()


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        build(tmp_path, 4)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root (or non-POSIX) can read any folder")
def test_unreadable_folder_is_refused(tmp_path, image_folder):
    image_folder.chmod(0)
    try:
        with pytest.raises(CalibrationError, match="not readable"):
            build(tmp_path, 4)
    finally:
        image_folder.chmod(0o755)


def test_too_few_images_says_how_many_were_found(tmp_path, image_folder):
    with pytest.raises(CalibrationError, match=r"asked for 20 calibration samples .* holds only 14 images"):
        build(tmp_path, 20)
    assert not (tmp_path / "out").exists()


def test_corrupt_image_is_refused_naming_it_and_nothing_is_written(tmp_path, image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(CalibrationError, match=r"broken\.png cannot be decoded.*--skip-bad"):
        build(tmp_path, 15)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_skip_bad_replaces_corrupt_images_and_records_them(tmp_path, image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"not an image at all")
    calib = load_calibration_set(build(tmp_path, 14, extra="skip_bad = true"))
    assert [s["path"] for s in calib.manifest["skipped"]] == ["dog/broken.png"]
    assert calib.count == 14 and "dog/broken.png" not in [r["path"] for r in calib.manifest["samples"]]


def test_skip_bad_still_refuses_when_too_few_good_images_remain(tmp_path, image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(CalibrationError, match=r"only 14 decodable images \(1 undecodable skipped\)"):
        build(tmp_path, 15, extra="skip_bad = true")


def test_existing_set_is_replaced_only_with_force(tmp_path, image_folder):
    spec = load_spec(folder_spec(tmp_path, 4))
    out = build_calibration_set(spec, tmp_path / "out")
    with pytest.raises(CalibrationError, match="--force"):
        build_calibration_set(spec.with_count(6), out)
    assert load_calibration_set(out).count == 4
    build_calibration_set(spec.with_count(6), out, force=True)
    assert load_calibration_set(out).count == 6


def test_force_does_not_replace_a_folder_that_is_not_a_set(tmp_path, image_folder):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(CalibrationError, match="not a calibration set"):
        build_calibration_set(load_spec(folder_spec(tmp_path, 4)), other, force=True)
    assert (other / "thesis.tex").read_text() == "precious"
