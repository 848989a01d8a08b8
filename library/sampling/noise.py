"""Per-image random noise, the way A1111 draws it with its "CPU" RNG source (`modules/rng.py: ImageRNG`).

Each image owns a CPU `torch.Generator` seeded with its seed. The first draw is the initial latent noise,
and the ancestral samplers' noises continue the same generator. So an image depends only on its seed and
settings: not on the batch it ran in, the device, or anything else that touched torch's global RNG.
This is A1111's `randn_source=CPU` ("RNG: CPU"): torch's CPU generator gives the same numbers on every machine.
With ENSD (eta noise seed delta) A1111 re-seeds each generator with seed + ENSD right after the first draw,
so the ancestral noises come from seed + ENSD: `reseed` does that.
"""

from __future__ import annotations

import secrets
from typing import Sequence

import torch

SEED_RANGE = 4294967294  # A1111's random seeds: randrange(4294967294)


def resolve_seed(seed: int | None) -> int:
    """`seed`, or a fresh random one for None / -1 (A1111's "random"), drawn without touching any global RNG."""
    return secrets.randbelow(SEED_RANGE) if seed is None or seed == -1 else seed


class ImageNoise:
    """Standard normal noise `[B, *shape]`, row i from the generator of `seeds[i]`."""

    def __init__(self, shape: Sequence[int], seeds: Sequence[int]):
        self.shape = tuple(shape)
        self.reseed(seeds)

    def reseed(self, seeds: Sequence[int]) -> None:
        """A fresh generator per row, seeded `seeds[i]`; again for A1111's ENSD (seed + ENSD after the first draw)."""
        self.generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]

    def draw(self) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])
