"""Fixtures for the quantize tests: digits bundles (seeded init or trained) and calibration sets."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGITS_SPEC = ROOT / "calibration" / "digits.toml"
DEPLOY_SPEC = ROOT / "calibration" / "digits-deploy.toml"


@pytest.fixture(scope="session")
def digits_calib(tmp_path_factory):
    """The 256-sample digits calibration set of calibration/digits.toml (built once)."""
    from edge_se.calibration.build import calibration_from

    return calibration_from(DIGITS_SPEC, tmp_path_factory.mktemp("calib"))


@pytest.fixture(scope="session")
def deploy_calib(tmp_path_factory):
    """The 1,024 training-augmented digits of calibration/digits-deploy.toml (built once)."""
    from edge_se.calibration.build import calibration_from

    return calibration_from(DEPLOY_SPEC, tmp_path_factory.mktemp("calib-deploy"))


@pytest.fixture(scope="session")
def small_calib(tmp_path_factory):
    """32 digits with the digits preprocessing: enough to calibrate, fast to build."""
    from edge_se.calibration.build import calibration_from
    from edge_se.calibration.spec import load_spec

    return calibration_from(load_spec(DIGITS_SPEC).with_count(32), tmp_path_factory.mktemp("calib32"))


@pytest.fixture
def copy_bundle(tmp_path):
    """``copy_bundle(bundle)`` -> an opened copy of an exported bundle the test may modify."""
    import shutil

    from edge_se.bundle import Bundle

    def make(bundle) -> "Bundle":
        dst = tmp_path / f"copy-{bundle.root.name}"
        shutil.copytree(bundle.root, dst)
        return Bundle.open(dst)

    return make


@pytest.fixture(scope="session")
def se_int8_bundle(export_cached, small_calib, tmp_path_factory):
    """A seeded-init se_digits bundle quantized to INT8 with policy 'all' (built once, read-only)."""
    import shutil

    from edge_se.bundle import Bundle
    from edge_se.quantize.stage import quantize_int8

    src = export_cached("se_digits", (1, 1, 32, 32))
    dst = tmp_path_factory.mktemp("int8") / "se"
    shutil.copytree(src.root, dst)
    return quantize_int8(Bundle.open(dst), small_calib, policy="all")


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory):
    """``trained_bundle(attn)`` -> an exported bundle of the trained ``<attn>_digits`` net."""
    from edge_se import progress
    from edge_se.data.cache import cached_digits_checkpoint
    from edge_se.export.pipeline import export_bundle

    progress.set_quiet(True)
    root = tmp_path_factory.mktemp("trained")
    cache: dict = {}

    def get(attn: str):
        if attn not in cache:
            cache[attn] = export_bundle(f"{attn}_digits", None, root / attn, checkpoint=cached_digits_checkpoint(attn))
        return cache[attn]

    return get
