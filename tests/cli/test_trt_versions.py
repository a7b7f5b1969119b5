"""TensorRT versions are dotted everywhere (10.3, 8.6); the legacy 8601 form is accepted and normalized."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_se.cli import build_parser, main
from edge_se.errors import InputError
from edge_se.tensorrt.versions import calibration_cache_version as cache_version
from edge_se.tensorrt.versions import parse_version_option, version_number

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, version, number", [
    ("8.6.1", (8, 6, 1), "8601"), ("8601", (8, 6, 1), "8601"), ("8.5", (8, 5), "8500"),
    ("10.3", (10, 3), "100300"), ("100300", (10, 3, 0), "100300"), ("10.3.0.26", (10, 3, 0, 26), "100300"),
])
def test_dotted_and_legacy_forms_parse_to_one_version(text, version, number):
    assert parse_version_option(text) == version
    assert version_number(version) == number


@pytest.mark.parametrize("bad", ["8..6", "12345", "8.6x", "v10", ""])
def test_other_spellings_are_refused(bad):
    with pytest.raises(InputError):
        parse_version_option(bad)


def test_trt_cache_version_defaults_to_dotted_and_normalizes_the_legacy_form():
    parser = build_parser()
    base = ["quantize", "B", "--precision", "int8"]
    assert parser.parse_args(base).trt_cache_version == "8.6.1"
    assert parser.parse_args(base + ["--trt-cache-version", "8601"]).trt_cache_version == "8.6.1"
    assert parser.parse_args(base + ["--trt-cache-version", "10.3"]).trt_cache_version == "10.3"
    # the cache header keeps TensorRT's own number (the file format)
    assert cache_version("8.6.1") == "8601" and cache_version("10.3") == "100300"


def test_a_cache_for_tensorrt_11_is_refused():
    with pytest.raises(InputError, match="no calibrators"):
        cache_version("11.0")


@pytest.mark.parametrize("argv", [["build", "B", "--recipe", "r", "--script-only"], ["inspect", "B", "--trt-version"]])
def test_version_options_normalize_and_refuse(argv, capsys):
    parser = build_parser()
    assert getattr(parser.parse_args(argv + ["8501"]), argv[-1].lstrip("-").replace("-", "_")) == "8.5.1"
    with pytest.raises(SystemExit):
        parser.parse_args(argv + ["eight"])
    assert "not a dotted version such as 10.3" in capsys.readouterr().err


def test_help_texts_and_docs_speak_dotted_versions(capsys):
    for cmd in ("quantize", "build", "inspect", "export"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert not re.search(r"default 8601\b|\b8601 =", text), cmd
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text(encoding="utf-8").splitlines():
            # the number appears only as the header's own spelling, TRT-8601-...
            assert not re.search(r"(?<!TRT-)\b(8601|100300)\b", line), f"{doc.name}: {line}"


def test_quantize_writes_the_cache_header_for_a_dotted_version(digits_bundle, small_calib_spec, capsys):
    assert main(["-q", "quantize", str(digits_bundle), "--precision", "int8", "--calib", str(small_calib_spec),
                 "--policy", "all", "--method", "minmax", "--weight-rounding", "nearest",
                 "--trt-cache-version", "10.3", "--json"]) == 0
    import json

    added = json.loads(capsys.readouterr().out)["added"]
    assert "model.int8.calib.cache" in added
    header = (digits_bundle / "model.int8.calib.cache").read_text().splitlines()[0]
    assert header == "TRT-100300-EntropyCalibration2"
