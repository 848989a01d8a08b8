"""What every txt2img mode (and compare) starts from: A1111's defaults under the flags given, the model, the device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..errors import UserError
from ..sampling.request import GenerationRequest

if TYPE_CHECKING:
    from ..models.sd_model import SDModel

# A1111's txt2img defaults for settings neither a flag nor a PNG gives.
DEFAULT_REQUEST = GenerationRequest(prompt="", steps=20, cfg_scale=7.0, sampler="euler_a", seed=-1)
SETTINGS = ("negative_prompt", "steps", "sampler", "cfg_scale", "seed", "width", "height", "ensd", "clip_skip")


def override(base: GenerationRequest, values: Mapping[str, object]) -> GenerationRequest:
    """`base` with every setting in `values` that is not None (flags given on the command line)."""
    return replace(base, **{k: v for k, v in values.items() if k in SETTINGS and v is not None})


def open_model(path: str, vae: str | None) -> SDModel:
    """Load a checkpoint, refusing missing files with a UserError."""
    from ..models.sd_model import load_model

    if not Path(path).exists():
        raise UserError(f"model not found: {path}")
    if vae is not None and not Path(vae).is_file():
        raise UserError(f"VAE not found: {vae}")
    return load_model(path, vae=vae)


def pick_device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")
