"""``edge-se export-deepstream``: nvinfer configs written from real bundles, checked by applying nvinfer's documented
preprocessing (``y = net-scale-factor * (x - offsets[c])``) with the values read back from the written file."""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_se.cli import main
from edge_se.preprocess import PreprocessSpec, preprocess_image
from edge_se.serving.deepstream import CONFIG_NAME, center_crop_region, fold_normalization

LABELS = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory, small_calib_spec) -> Path:
    """se_digits exported with labels and quantized to INT8 by the real stages."""
    root = tmp_path_factory.mktemp("deepstream")
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    b = root / "se_digits"
    assert main(["-q", "export", "se_digits", "--out", str(b), "--labels", str(labels)]) == 0
    assert main(["-q", "quantize", str(b), "--precision", "int8", "--calib", str(small_calib_spec), "--policy",
                 "keep-gates", "--weight-rounding", "nearest"]) == 0
    assert main(["-q", "quantize", str(b), "--precision", "fp16"]) == 0
    return b


@pytest.fixture(scope="module")
def rgb(export_cached) -> Path:
    return export_cached("se_resnet18", (1, 3, 64, 64)).root


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")  # 427 x 640 RGB


def _write(bundle: Path, out: Path, *extra: str) -> configparser.SectionProxy:
    assert main(["-q", "export-deepstream", str(bundle), "--out", str(out), *extra]) == 0
    return _parse(out)


def _parse(out: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), comment_prefixes=("#",), strict=True)
    parser.optionxform = str  # nvinfer keys are case-sensitive
    parser.read_string((out / CONFIG_NAME).read_text(encoding="utf-8"))
    assert parser.sections() == ["property"]
    return parser["property"]


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(bundle: Path) -> PreprocessSpec:
    return PreprocessSpec.from_dict(_manifest(bundle)["preprocessing"])


def _nvinfer(pixels: np.ndarray, prop: configparser.SectionProxy) -> np.ndarray:
    """nvinfer's preprocessing of CHW 0-255 planes with the config's own values."""
    offsets = np.array([float(v) for v in prop["offsets"].split(";")], np.float64)[:, None, None]
    return float(prop["net-scale-factor"]) * (pixels.astype(np.float64) - offsets)


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def test_fp32_config_names_the_bundles_files_shapes_and_labels(digits, tmp_path):
    out = tmp_path / "ds"
    prop = _write(digits, out)
    m = _manifest(digits)
    record = m["artifacts"]["model.onnx"]
    assert prop["onnx-file"] == "model.onnx" and _sha(out / "model.onnx") == record["files"][0]["sha256"]
    assert prop["infer-dims"] == ";".join(str(d) for d in record["inputs"][0]["shape"][1:])
    assert prop["output-blob-names"] == ";".join(o["name"] for o in record["outputs"])
    assert (prop["network-mode"], prop["model-color-format"], prop["network-type"]) == ("0", "2", "1")
    assert prop["batch-size"] == "1" and "model-engine-file" not in prop and "int8-calib-file" not in prop
    # nvinfer's classifier label file: one line per output layer, ';'-separated
    assert (out / prop["labelfile-path"]).read_text(encoding="utf-8").splitlines() == [";".join(LABELS)]
    assert (out / ".edge-se-serving.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".edge-se-serving.json", CONFIG_NAME, "labels.txt", "model.onnx"]


def test_written_scale_and_offsets_reproduce_the_bundles_normalization_up_to_the_stated_fold(rgb, photo, tmp_path):
    out = tmp_path / "ds"
    prop = _write(rgb, out)
    spec = _spec(rgb)
    plain = dataclasses.replace(spec, resize=None)
    crop = photo[100:100 + spec.crop[0], 200:200 + spec.crop[1]]
    want = preprocess_image(crop, plain).astype(np.float64)  # the runtime's own tensor
    got = _nvinfer(crop.transpose(2, 0, 1), prop)
    ratio = np.array([np.nanmedian(got[c] / np.where(np.abs(want[c]) > 0.1, want[c], np.nan)) for c in range(3)])
    stated = fold_normalization(spec).scale_error
    np.testing.assert_allclose(ratio - 1.0, stated, atol=1e-6)
    np.testing.assert_allclose(got, want * (1.0 + np.array(stated))[:, None, None], atol=1e-4)
    # ImageNet's std folded to one scalar: the worst channel is off by ~1.1 % (the smallest achievable)
    assert 0.010 < max(abs(e) for e in stated) < 0.0115
    text = (out / CONFIG_NAME).read_text(encoding="utf-8")
    assert "# NOTE: nvinfer applies one scale to all channels" in text and "+1.10 %" in text


def test_exact_onnx_takes_nvinfer_pixels_and_matches_the_original_on_a_photo(rgb, photo, tmp_path):
    out = tmp_path / "ds"
    prop = _write(rgb, out, "--exact", "--batch-size", "2")
    assert (prop["net-scale-factor"], prop["offsets"], prop["onnx-file"]) == ("1.0", "0.0;0.0;0.0",
                                                                              "model.normalized.onnx")
    assert not (out / "model.onnx").exists() and "one scale" not in (out / CONFIG_NAME).read_text(encoding="utf-8")
    spec = _spec(rgb)
    plain = dataclasses.replace(spec, resize=None)
    crops = [photo[r:r + spec.crop[0], c:c + spec.crop[1]] for r, c in ((0, 0), (150, 300))]
    pixels = np.stack([_nvinfer(c.transpose(2, 0, 1), prop) for c in crops])
    ref = _ort(rgb / "model.onnx", np.stack([preprocess_image(c, plain) for c in crops]))
    got = _ort(out / "model.normalized.onnx", pixels)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_bgr_offsets_and_scale_follow_the_network_channel_order(photo):
    spec = PreprocessSpec(crop=(8, 8), resize=None, color="BGR")
    norm = fold_normalization(spec)
    assert norm.offsets == pytest.approx([0.406 * 255, 0.456 * 255, 0.485 * 255])  # B, G, R
    crop = photo[:8, :8]
    want = preprocess_image(crop, spec).astype(np.float64)  # already in BGR planes
    prop = {"offsets": ";".join(map(str, norm.offsets)), "net-scale-factor": str(norm.net_scale_factor)}
    got = _nvinfer(crop[:, :, ::-1].transpose(2, 0, 1), prop)  # nvinfer with model-color-format=1 feeds B, G, R
    np.testing.assert_allclose(got, want * (1.0 + np.array(norm.scale_error))[:, None, None], atol=1e-4)


def test_frame_size_gives_the_src_crop_that_matches_resize_and_center_crop(photo):
    from PIL import Image

    spec = PreprocessSpec(crop=(224, 224), resize=256)
    h, w = photo.shape[:2]
    left, top, cw, ch = center_crop_region(spec, (w, h))
    # torchvision's Resize(256) makes 640x427 383x256 (long side truncated); its 80-pixel crop offset, in the frame
    assert (cw, ch) == (round(224 * 640 / 383), round(224 * 427 / 256)) and left == round(80 * 640 / 383)
    raw = dataclasses.replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1.0)
    want = preprocess_image(photo, raw)  # resize shorter side, center crop, no normalization
    frame = Image.fromarray(photo)
    cropped = np.asarray(frame.crop((left, top, left + cw, top + ch)).resize((224, 224), Image.BILINEAR), np.float32)
    stretched = np.asarray(frame.resize((224, 224), Image.BILINEAR), np.float32)
    err_crop = np.abs(cropped.transpose(2, 0, 1) - want).mean()
    err_stretch = np.abs(stretched.transpose(2, 0, 1) - want).mean()
    assert err_crop < 5 and err_crop * 5 < err_stretch  # pixels, 0-255


def test_frame_size_crop_is_written_into_the_config(rgb, tmp_path):
    out = tmp_path / "ds"
    _write(rgb, out, "--frame-size", "1920x1080")
    note = re.search(r"src-crop=(\d+):(\d+):(\d+):(\d+)", (out / CONFIG_NAME).read_text(encoding="utf-8"))
    assert note and tuple(map(int, note.groups())) == center_crop_region(_spec(rgb), (1920, 1080)) == (476, 59, 953, 947)


def test_int8_uses_the_tensorrt_qdq_file_and_needs_no_calibration_file(digits, tmp_path):
    out = tmp_path / "ds"
    prop = _write(digits, out, "--precision", "int8")
    entry = _manifest(digits)["artifacts"]["model.int8.trt.onnx"]["files"][0]
    assert prop["network-mode"] == "1" and prop["onnx-file"] == "model.int8.trt.onnx"
    assert _sha(out / "model.int8.trt.onnx") == entry["sha256"] and "int8-calib-file" not in prop


def test_int8_exact_qdq_file_matches_the_original_qdq_file(digits, tmp_path):
    out = tmp_path / "ds"
    prop = _write(digits, out, "--precision", "int8", "--exact", "--batch-size", "3")
    assert prop["onnx-file"] == "model.int8.trt.normalized.onnx" and prop["network-mode"] == "1"
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 32, 32), dtype=np.uint8)
    spec = dataclasses.replace(_spec(digits), resize=None)
    ref = _ort(digits / "model.int8.trt.onnx", np.stack([preprocess_image(im, spec) for im in images]))
    got = _ort(out / prop["onnx-file"], np.stack([_nvinfer(im[None], prop) for im in images]))
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_int8_from_model_onnx_ships_the_quantize_stages_calibration_cache(digits, tmp_path):
    out = tmp_path / "ds"
    prop = _write(digits, out, "--onnx", "model.onnx", "--precision", "int8")
    cache = next(r for r in _manifest(digits)["artifacts"].values() if r["format"] == "tensorrt-calibration-cache")
    assert prop["int8-calib-file"] == "calibration.cache" and prop["network-mode"] == "1"
    assert _sha(out / "calibration.cache") == next(f["sha256"] for f in cache["files"] if f["path"] == cache["path"])
    assert (out / "calibration.cache").read_text().splitlines()[0].endswith("-EntropyCalibration2")


@pytest.mark.parametrize("args, message", [
    (["--onnx", "model.int8.cpu.onnx"], "CPU INT8 file"),
    (["--onnx", "model.fp16.onnx"], "nvinfer feeds float32"),
    (["--onnx", "model.onnx", "--precision", "int8", "--exact"], "--exact with the calibration cache"),
    (["--onnx", "model.int8.trt.onnx", "--precision", "fp16"], "builds as INT8"),
    (["--engine", "model.onnx"], "not a TensorRT engine"),
    (["--exact", "--engine", "x.engine"], "prebuilt --engine"),
    (["--onnx", "nope.onnx"], "has no artifact 'nope.onnx'"),
    (["--batch-size", "0"], "at least 1"),
    (["--frame-size", "big"], "WIDTHxHEIGHT"),
    (["--frame-size", "0x720"], "positive integers"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(digits, tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["export-deepstream", str(digits), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_out_is_replaced_only_when_it_is_edge_ses_and_forced(digits, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["export-deepstream", str(digits), "--out", str(foreign)]) == 2
    assert "did not write" in capsys.readouterr().err and (foreign / "keep.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    _write(digits, ours)
    assert main(["export-deepstream", str(digits), "--out", str(ours), "--precision", "int8"]) == 2
    assert "--force" in capsys.readouterr().err
    assert _write(digits, ours, "--precision", "int8", "--force")["network-mode"] == "1"
    assert not (ours / "model.onnx").exists()  # the old folder was replaced, not merged


def test_a_label_holding_the_separator_is_refused(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["zero;0", *LABELS[1:]]) + "\n", encoding="utf-8")
    b = tmp_path / "b"
    assert main(["-q", "export", "se_digits", "--out", str(b), "--labels", str(labels)]) == 0
    assert main(["export-deepstream", str(b), "--out", str(tmp_path / "ds")]) == 2
    assert "holds ';'" in capsys.readouterr().err and not (tmp_path / "ds").exists()


def test_a_manifest_output_name_that_would_break_the_key_file_is_refused(digits, tmp_path, capsys):
    b = tmp_path / "b"
    shutil.copytree(digits, b)
    m = _manifest(b)
    m["artifacts"]["model.onnx"]["outputs"][0]["name"] = "logits\nmodel-engine-file=/etc/passwd"
    (b / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["export-deepstream", str(b), "--out", str(tmp_path / "ds")]) == 2
    assert "output-blob-names" in capsys.readouterr().err and not (tmp_path / "ds").exists()


def test_static_batch_bundle_needs_its_own_batch_size(tmp_path, capsys):
    b = tmp_path / "static"
    assert main(["-q", "export", "se_digits", "--out", str(b), "--input-shape", "2x1x32x32", "--static-batch"]) == 0
    assert main(["export-deepstream", str(b), "--out", str(tmp_path / "ds")]) == 2
    assert "static batch of 2" in capsys.readouterr().err
    assert _write(b, tmp_path / "ds", "--batch-size", "2")["batch-size"] == "2"
    # the quantize stage refuses a static batch in one line instead of failing inside ONNX Runtime
    assert main(["quantize", str(b), "--precision", "fp16"]) == 2
    assert "static batch of 2" in capsys.readouterr().err
