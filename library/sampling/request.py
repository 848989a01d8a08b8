"""What to generate: one image's prompt and settings, checked when made. No torch here, so parsing is instant."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.sampler_names import SAMPLER_LABELS, sampler_key
from ..errors import UserError

__all__ = ["SAMPLER_LABELS", "SCHEDULE_LABELS", "USES_ENSD", "GenerationRequest", "sampler_key"]

# A1111 1.10's "Schedule type" of each sampler (keys of SAMPLER_LABELS) when left on Automatic; the others use the
# uniform schedule.
SCHEDULE_LABELS = {"dpmpp_2m": "Karras"}
# Samplers whose ancestral noise ENSD changes, so A1111 writes `ENSD` only for them (`uses_ensd`).
USES_ENSD = frozenset({"euler_a"})


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt's images. `seed` None (or -1, as in A1111) draws a random seed, reported back with the image.

    `n_images`: images made from this request, image i with seed + i (A1111's batch count × batch size).
    `ensd`: A1111's eta noise seed delta; when non-zero the ancestral noise comes from seed + ENSD.
    """

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    cfg_scale: float = 7.5
    seed: int | None = None
    sampler: str = "euler_a"
    clip_skip: int | None = None
    n_images: int = 1
    ensd: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 8 or value % 8:
                raise UserError(f"{name} must be a positive multiple of 8 (latents are 1/8 of the image), got {value}")
        if self.steps < 1:
            raise UserError(f"steps must be at least 1, got {self.steps}")
        if self.clip_skip is not None and self.clip_skip < 1:
            raise UserError(f"clip_skip counts from 1 (the last layer), got {self.clip_skip}")
        if self.n_images < 1:
            raise UserError(f"n_images must be at least 1, got {self.n_images}")
        sampler_key(self.sampler)
