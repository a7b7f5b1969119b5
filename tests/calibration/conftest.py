"""Fixtures: real image files of several modes and formats written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from calib_helpers import write_image


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """tmp_path/images with 3 class subfolders (cat 6, dog 6, owl 2), PNG and JPEG, RGB only."""
    root = tmp_path / "images"
    for cls, n in (("cat", 6), ("dog", 6), ("owl", 2)):
        for i in range(n):
            suffix = ".png" if i % 2 else ".jpg"
            write_image(root / cls / f"{cls}{i}{suffix}", seed=100 * len(cls) + ord(cls[0]) + i)
    return root
