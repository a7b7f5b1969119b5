"""Image preprocessing shared by calibration, validation and the runtime.

A :class:`PreprocessSpec` is recorded in every bundle's manifest; the calibrator, the validator
and the embedded runtime all call :func:`preprocess_image` with it, so the three see exactly the
same tensors. Only NumPy and Pillow are used (no torch), because the runtime depends on this.

Pipeline, in order: decode -> convert to the colour mode -> resize (shorter side to ``resize``,
keeping aspect) -> center crop to ``crop`` -> scale by ``scale`` -> ``(x - mean) / std`` ->
channel order (RGB/BGR) -> layout (NCHW/NHWC) -> dtype. Sizes, crop offsets and the 1/255 scale
are computed as torchvision's ``Resize`` + ``CenterCrop`` + ``ToTensor`` + ``Normalize`` compute
them on PIL images, so a bundle's tensor equals torchvision's bit for bit (tested).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edge_se.errors import ImagesError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_COLORS = ("RGB", "BGR", "GRAY")
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("float32", "float16")
_INTERP = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw images become model inputs. Defaults are torchvision's ImageNet recipe."""

    crop: tuple[int, int] = (224, 224)
    resize: int | None = 256
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        def bad(key: str, expected: str, got: Any) -> InputError:
            return InputError(f"preprocessing key '{key}': expected {expected}, got {got!r}")

        if self.color not in _COLORS:
            raise bad("color", " | ".join(_COLORS), self.color)
        if self.layout not in _LAYOUTS:
            raise bad("layout", " | ".join(_LAYOUTS), self.layout)
        if self.dtype not in _DTYPES:
            raise bad("dtype", " | ".join(_DTYPES), self.dtype)
        if self.interpolation not in _INTERP:
            raise bad("interpolation", " | ".join(_INTERP), self.interpolation)
        if len(self.crop) != 2 or any(int(v) <= 0 for v in self.crop):
            raise bad("crop", "[height, width] with positive integers", list(self.crop))
        if self.resize is not None and int(self.resize) <= 0:
            raise bad("resize", "a positive integer or null", self.resize)
        n = self.channels
        if len(self.mean) != n or len(self.std) != n:
            raise bad("mean/std", f"{n} values each for color {self.color}", (list(self.mean), list(self.std)))
        if any(s == 0 for s in self.std):
            raise bad("std", "non-zero values", list(self.std))

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["crop"] = list(self.crop)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "preprocessing") -> "PreprocessSpec":
        """Build from a dict (manifest or TOML table); unknown keys and wrong types are refused."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a table of preprocessing keys, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        kw: dict[str, Any] = {}
        for key, value in data.items():
            try:
                if key in ("crop", "mean", "std"):
                    if isinstance(value, (int, float)) and key == "crop":
                        value = [value, value]
                    kw[key] = tuple(int(v) if key == "crop" else float(v) for v in value)
                elif key == "resize":
                    kw[key] = None if value is None else int(value)
                elif key == "scale":
                    kw[key] = float(value)
                else:
                    if not isinstance(value, str):
                        raise TypeError
                    kw[key] = value.upper() if key in ("color", "layout") else value
            except (TypeError, ValueError):
                raise InputError(f"{where}: key '{key}' has the wrong type ({value!r})") from None
        try:
            return cls(**kw)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None

    @classmethod
    def for_input_shape(cls, shape: Sequence[int], **overrides: Any) -> "PreprocessSpec":
        """The default spec for an NCHW input shape: ImageNet stats for 3 channels, 0.5/0.5 for 1."""
        if len(shape) != 4:
            raise InputError(f"expected an NCHW input shape of 4 dims, got {list(shape)}")
        _, c, h, w = (int(v) for v in shape)
        if c not in (1, 3):
            raise InputError(f"image preprocessing supports 1 or 3 input channels, the model takes {c}")
        resize = int(math.floor(min(h, w) / 0.875)) if min(h, w) >= 64 else None
        base: dict[str, Any] = {"crop": (h, w), "resize": resize}
        if c == 1:
            base.update(color="GRAY", mean=(0.5,), std=(0.5,))
        base.update(overrides)
        return cls(**base)


# ---------------------------------------------------------------------------------- images
def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (sorted); a clear error if there is none."""
    folder = Path(folder)
    if not folder.exists():
        raise ImagesError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise ImagesError(f"{folder} is not a folder; pass a folder of images")
    it: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    paths = sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ImagesError(
            f"image folder {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}"
            f"{', recursively' if recursive else ''})"
        )
    return paths


def load_image(path: str | os.PathLike[str], color: str = "RGB"):
    """Decode an image file into a PIL image in ``color`` mode (RGB for RGB/BGR, L for GRAY).

    Grayscale, palette, RGBA (alpha dropped onto black) and CMYK images are converted.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImagesError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            return to_mode(im, color)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImagesError(f"cannot decode image {path}: {e}") from None


def decode_image(data: bytes, color: str = "RGB", where: str = "image"):
    """Decode an encoded image (PNG, JPEG, ...) held in memory, as :func:`load_image` does a file."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            im.load()
            return to_mode(im, color)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImagesError(f"cannot decode {where}: {e}") from None


def to_mode(im, color: str):
    """Convert a PIL image to the mode a spec's colour needs (RGB for RGB/BGR, L for GRAY)."""
    target = "L" if color == "GRAY" else "RGB"
    if im.mode == target:
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode == "I;16" or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        hi = max(float(arr.max()), 1.0)
        from PIL import Image

        im = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8))
    return im.convert(target)


def _resample(name: str) -> int:
    from PIL import Image

    return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[name]


def resized_size(w: int, h: int, short: int) -> tuple[int, int]:
    """(w, h) after resizing the shorter side to ``short``, the long side truncated as torchvision's ``Resize``."""
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def crop_offset(size: int, crop: int) -> int:
    """Left/top offset of a center crop, rounded as torchvision's ``CenterCrop`` rounds it."""
    return int(round((size - crop) / 2.0))


def preprocess_image(image: Any, spec: PreprocessSpec) -> np.ndarray:
    """One image (path, PIL image, or HxW / HxWxC uint8 array in RGB order) -> CHW or HWC array."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        im = load_image(image, spec.color)
    elif isinstance(image, Image.Image):
        im = to_mode(image, spec.color)
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ImagesError(f"expected a decoded image array HxW or HxWx3 (RGB), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        im = to_mode(Image.fromarray(arr), spec.color)
    else:
        raise ImagesError(f"expected an image path, PIL image or uint8 array, got {type(image).__name__}")

    ch, cw = spec.crop
    if spec.resize is not None:
        w, h = im.size
        if (w, h) != resized_size(w, h, spec.resize):
            im = im.resize(resized_size(w, h, spec.resize), _resample(spec.interpolation))
    w, h = im.size
    if w < cw or h < ch:  # torchvision would pad with zeros here; an upscale keeps the whole picture
        im = im.resize((max(w, cw), max(h, ch)), _resample(spec.interpolation))
        w, h = im.size
    left, top = crop_offset(w, cw), crop_offset(h, ch)
    im = im.crop((left, top, left + cw, top + ch))

    x = np.asarray(im, dtype=np.float32)
    inverse = 1.0 / spec.scale
    # ToTensor divides by 255; multiplying by the rounded float32 of 1/255 differs in the last bit
    x = x / np.float32(inverse) if inverse.is_integer() else x * np.float32(spec.scale)
    if x.ndim == 2:
        x = x[:, :, None]
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.color == "BGR":
        x = x[:, :, ::-1]
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.dtype(spec.dtype))


def preprocess_batch(images: Sequence[Any], spec: PreprocessSpec) -> np.ndarray:
    """Several images -> one batch array (N first)."""
    if len(images) == 0:
        raise ImagesError("no images given")
    return np.stack([preprocess_image(im, spec) for im in images])


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PreprocessSpec",
    "decode_image",
    "list_images",
    "load_image",
    "preprocess_batch",
    "preprocess_image",
]
