"""Latents to pictures through the VAE, surviving the fp16 VAE NaNs A1111 users know (`--no-half-vae`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from PIL import Image


def decode_latents(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Pixels, roughly in [-1, 1], `[B, 3, 8h, 8w]`, float32, decoded one image at a time as A1111 does.

    A half-precision decode that gives NaN is redone in fp32: the SD VAE overflows fp16 in its last blocks on
    some latents. The retry casts the VAE up and back down, which is lossless (fp16/bf16 values are exact
    in fp32).
    """
    dtype = next(vae.parameters()).dtype
    scaled = latents / vae.config.scaling_factor
    return torch.cat([_decode_one(vae, one, dtype) for one in scaled.split(1)])


def _decode_one(vae: torch.nn.Module, scaled: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    pixels = vae.decode(scaled.to(dtype)).sample
    if dtype != torch.float32 and torch.isnan(pixels).any():
        try:
            pixels = vae.float().decode(scaled.float()).sample
        finally:
            vae.to(dtype)
    return pixels.float()


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """RGB images from pixels in [-1, 1]; values are truncated to uint8 as A1111 does (not rounded)."""
    from PIL import Image

    array = (((pixels + 1) / 2).clamp(0, 1) * 255).permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
    return [Image.fromarray(a) for a in array]
