"""Image files (PNG, JPEG, ...) as new rows for a model of image pixels: ``make predict INPUT=photo.png`` or a folder.

An image model's ``inputs.json`` records its images' shape (channels first) and pixel range; each file is read with
Pillow, turned upright as its EXIF orientation says, converted to the model's channels (``L`` for grey, ``RGB``,
``RGBA``: Pillow's conversion, e.g. ITU-R 601-2 luma from colour; an alpha channel dropped, not composited), and its
8-bit intensities divided to 0..1, the range every image source is loaded in (``data.scaling``); 16-bit and float
images are refused (Pillow would clip them to 8 bits). Sizes are never changed: a file of another width or height
is refused, naming it, since how the source's images were resized and cropped is not recorded. A folder's files are taken in the order of their
names; each row's id is its position in that order, and its file name goes with it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DistilleryError
from .scaling import UINT8_PIXEL_MAX, as_pixels
from .validation import _listed

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode
EIGHT_BIT = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")  # Pillow's 8-bit modes


def is_image_input(path: Path) -> bool:
    """A file with an image suffix, or a folder (of image files)."""
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


def image_files(path: Path) -> list[Path]:
    """The image file ``path``, or a folder's image files in the order of their names."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DistilleryError(f"{path}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.exists():
        raise DistilleryError(f"{path}: file not found")
    return [path]


def read_images(record: dict, path: Path) -> tuple[list[str], np.ndarray]:
    """The files of ``path`` (``image_files``) as inputs of the model of ``record``: their names and float32
    intensities 0..1 of shape (N, *record["shape"]), channels first. Every file is read and checked first."""
    if record.get("pixel_max") is None:
        raise DistilleryError(f"{path}: this model learnt from arrays that are no image pixels (its source's were "
                              f"not uint8 or the digits): give a .npy or .npz of shape {record['shape']}")
    shape = list(record["shape"])
    channels = shape[0] if len(shape) == 3 else None
    if len(shape) not in (2, 3) or (channels is not None and channels not in MODES):
        raise DistilleryError(f"{path}: this model takes arrays of shape {shape}, not images of 1, 3 or 4 channels: "
                              "give a .npy or .npz")
    height, width = shape[-2:]
    from PIL import Image, ImageOps, UnidentifiedImageError

    files, images, wrong = image_files(path), [], []
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode not in EIGHT_BIT:
                    raise DistilleryError(f"{file}: an image of mode {image.mode} (16-bit or float values); the "
                                          "model takes 8-bit images (0..255): convert them, or give a .npy of "
                                          "the values the source holds")
                upright = ImageOps.exif_transpose(image)
                pixels = np.asarray(upright.convert(MODES[channels or 1]), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:  # ValueError: a mode Pillow cannot convert (LAB)
            raise DistilleryError(f"{file}: not readable as an image: {exc}") from None
        if pixels.shape[:2] != (height, width):
            wrong.append(f"{file.name} {pixels.shape[1]}x{pixels.shape[0]}")
        images.append(pixels)
    if wrong:
        raise DistilleryError(f"{path}: the model takes images of {width}x{height} pixels (width x height) and "
                              f"sizes are not changed; {len(wrong)} of {len(files)} files differ: {_listed(wrong)}")
    values = np.stack(images)  # (N, H, W) or (N, H, W, C)
    if channels is not None:
        values = values[..., None] if values.ndim == 3 else values
        values = values.transpose(0, 3, 1, 2)
    names = [file.name if path.is_dir() else str(file) for file in files]
    return names, as_pixels(values, UINT8_PIXEL_MAX)
