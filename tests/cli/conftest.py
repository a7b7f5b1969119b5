"""Fixtures of the command-line convention tests: a real se_digits bundle (the export stage's own)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from zoo_helpers import digits_recipe

FP16_RECIPE = digits_recipe("digits-desktop-fp16", "desktop", ">=10.0,<11", 'mode = "fp16"')


@pytest.fixture(scope="session")
def digits_bundle_src(export_cached) -> Path:
    """An se_digits bundle made by the real export stage, shared: copy it before writing to it."""
    return export_cached("se_digits", (1, 1, 32, 32)).root


@pytest.fixture
def digits_bundle(digits_bundle_src, tmp_path) -> Path:
    """A private copy of the se_digits bundle."""
    return Path(shutil.copytree(digits_bundle_src, tmp_path / "bundle"))


@pytest.fixture
def fp16_recipe(tmp_path) -> Path:
    path = tmp_path / "digits-desktop-fp16.toml"
    path.write_text(FP16_RECIPE)
    return path
