"""Reading training images: the oriented size and an integrity check at build time, RGB pixels at load time.

Buckets need every image's size before training, and a damaged file should be reported before the model
loads, not hours in. Decoding every image at build time would take minutes on large sets, so the check is
cheap but real: PNG chunks are read and CRC-checked without inflating, JPEGs are decoded at 1/8 scale
(DCT scaling still reads every byte, so truncation shows). Sizes follow the EXIF orientation, as the pixels do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from .problems import Unusable

EXIF_ORIENTATION = 0x0112
SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
WHITE = (255, 255, 255, 255)


def probe_image(path: Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF-rotated); raises Unusable when the file is not a sound image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION) in SWAPS_SIDES:
                width, height = height, width
        with Image.open(path) as image:  # afresh: PNG's verify must come straight after open
            _check_integrity(image)
    except UnidentifiedImageError:
        raise Unusable("not an image, or a format PIL cannot read") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise Unusable(f"damaged or truncated ({exc})") from None
    return width, height


def _check_integrity(image: Image.Image) -> None:
    if image.format == "JPEG":
        image.draft(image.mode, (1, 1))
        image.load()
    elif image.format == "PNG":
        image.verify()
    else:
        image.load()


def load_rgb(path: Path) -> Image.Image:
    """The image upright and in 8-bit RGB. A file that fails now passed the build-time check, so it changed
    or is damaged in a way the check cannot see: stop with its name rather than train on a hole."""
    try:
        with Image.open(path) as image:
            return to_rgb(ImageOps.exif_transpose(image))
    except Exception as exc:
        raise UserError(f"{path}: cannot decode this image ({exc}). Replace or remove the file, then restart "
                        "(or resume from the last saved state).") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit greys scaled (PIL would clip them), transparency composited onto white, CMYK,
    palette and grey converted."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, WHITE), image)
    return image.convert("RGB")
