"""Helpers for the calibration tests: real image files and specs written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A random image in ``mode`` saved at ``path`` (format from the suffix)."""
    rng = np.random.default_rng(seed)
    w, h = size
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    im = {"RGB": rgb, "L": rgb.convert("L"), "RGBA": rgb.convert("RGBA"), "CMYK": rgb.convert("CMYK"),
          "P": rgb.convert("P")}[mode]
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def write_spec(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


SMALL_PRE = """
[preprocessing]
crop = [16, 16]
resize = 20
"""


def folder_spec(tmp_path: Path, count: int, method: str = "random", extra: str = "", seed: int = 0) -> Path:
    """A spec for the folder ``tmp_path/images`` with a small 16x16 RGB preprocessing."""
    return write_spec(
        tmp_path / "spec.toml",
        f'[source]\nkind = "folder"\npath = "images"\n{SMALL_PRE}\n'
        f'[selection]\ncount = {count}\nseed = {seed}\nmethod = "{method}"\n{extra}',
    )
