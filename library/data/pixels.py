"""From decoded images to the training tensor: resize, crop, flip, colour jitter, scale to [-1, 1].

Every random choice (flip, random-crop offset, jitter) comes from the sample's seed, each from its own
stream, so the same plan gives the same pixels in any process and a latent-cached run flips the same
samples as an uncached one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..config.dataset_spec import SubsetSpec
from .buckets import Placement, Size, crop_origin

FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "linear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "cubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,  # OpenCV's INTER_AREA, which kohya uses, is a box filter when shrinking
}
HUE_SHIFT = 8 / 180  # kohya: up to 8 of OpenCV's 180 hue units
GAMMA = (0.95, 1.05)
COLOR_AUG_CHANCE = 0.33


@dataclass(frozen=True)
class Augment:
    """The random choices for one sample; the default is the plain centre crop that latents are cached for."""

    flip: bool = False
    crop: Size | None = None  # top-left corner of a random crop; None: centre
    color_seed: int | None = None


def choose_augment(subset: SubsetSpec, placement: Placement, seed: int) -> Augment:
    flip = subset.flip_aug and random.Random(f"flip:{seed}").random() < 0.5
    crop = None
    if subset.random_crop:
        rng = random.Random(f"crop:{seed}")
        (bw, bh), (rw, rh) = placement.bucket, placement.resized
        crop = rng.randint(0, rw - bw), rng.randint(0, rh - bh)
    return Augment(flip, crop, seed if subset.color_aug else None)


def render(image: Image.Image, placement: Placement, interpolation: str | None, augment: Augment) -> Image.Image:
    """The sample's image at the bucket size: resized, cropped, maybe mirrored and colour-jittered."""
    image = resize(image, placement.resized, interpolation)
    left, top = augment.crop or crop_origin(placement)
    width, height = placement.bucket
    image = image.crop((left, top, left + width, top + height))
    if augment.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if augment.color_seed is not None:
        image = color_jitter(image, random.Random(f"color:{augment.color_seed}"))
    return image


def to_batch(images: list[Image.Image]) -> torch.Tensor:
    """[B, 3, H, W] float32 in [-1, 1]. Done in NumPy in one go: a few small torch ops per image cost more
    than the decode when the training process keeps the CPU cores busy."""
    batch = np.ascontiguousarray(np.stack([np.asarray(image) for image in images]).transpose(0, 3, 1, 2),
                                 dtype=np.float32)
    batch /= 127.5
    batch -= 1.0
    return torch.from_numpy(batch)


def resize(image: Image.Image, size: Size, interpolation: str | None) -> Image.Image:
    """kohya's default filter: area when shrinking both sides, Lanczos otherwise."""
    if image.size == size:
        return image
    if interpolation is None:
        shrinking = image.width >= size[0] and image.height >= size[1]
        interpolation = "area" if shrinking else "lanczos"
    return image.resize(size, FILTERS[interpolation])


def color_jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """kohya's weak colour augmentation: a third of the samples get a hue shift or a gamma, half each."""
    if rng.random() > COLOR_AUG_CHANCE:
        return image
    if rng.random() > 0.5:
        hsv = np.asarray(image.convert("HSV")).copy()
        shift = round(rng.uniform(-HUE_SHIFT, HUE_SHIFT) * 256)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
        return Image.fromarray(hsv, mode="HSV").convert("RGB")
    gamma = rng.uniform(*GAMMA)
    return image.point([round(255 * (v / 255) ** gamma) for v in range(256)] * 3)
