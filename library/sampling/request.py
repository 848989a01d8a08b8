"""What to generate: one image's prompt and settings, checked when made. No torch here, so parsing is instant."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError

# Our sampler keys (kohya's `--ss` / `sample_sampler` names) and the labels A1111 writes as `Sampler:`.
SAMPLER_LABELS = {"euler_a": "Euler a", "euler": "Euler"}
_ALIASES = {"k_euler_a": "euler_a", "k_euler": "euler"}  # kohya's k-diffusion spellings


def sampler_key(name: str) -> str:
    """Our key for a sampler given as a key, a kohya alias or an A1111 label ("Euler a"), any case."""
    wanted = name.strip().lower()
    by_name = {**{k: k for k in SAMPLER_LABELS}, **_ALIASES,
               **{label.lower(): k for k, label in SAMPLER_LABELS.items()}}
    if wanted not in by_name:
        known = ", ".join(f"{k} ({label})" for k, label in SAMPLER_LABELS.items())
        raise UserError(f"unknown or not yet supported sampler {name!r}; available: {known}")
    return by_name[wanted]


@dataclass(frozen=True)
class GenerationRequest:
    """One image. `seed` None (or -1, as in A1111) draws a random seed, reported back with the image."""

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    cfg_scale: float = 7.5
    seed: int | None = None
    sampler: str = "euler_a"
    clip_skip: int | None = None

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 8 or value % 8:
                raise UserError(f"{name} must be a positive multiple of 8 (latents are 1/8 of the image), got {value}")
        if self.steps < 1:
            raise UserError(f"steps must be at least 1, got {self.steps}")
        if self.clip_skip is not None and self.clip_skip < 1:
            raise UserError(f"clip_skip counts from 1 (the last layer), got {self.clip_skip}")
        sampler_key(self.sampler)
