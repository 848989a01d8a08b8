"""Random figures of the world: each attribute drawn by a Zipf-like law over its values (the first most common),
so the tag counts of a world data set have a real tag list's shape: a few common tags, many rare ones."""

from __future__ import annotations

import random
from typing import Sequence

from .figures import ACCESSORIES, WORLD_BACKGROUNDS, WORLD_EYES, WORLD_HAIR, WORLD_SHIRTS, Figure

ZIPF_EXPONENT = 1.1
ACCESSORY_RATE = 0.3  # share of figures that wear one of the ACCESSORIES
SIZES = [(128, 128), (128, 192), (192, 128)]  # width, height: square, portrait, landscape for bucketing
# (hair, background) pairs the world never draws together: the base model sees each half often, never the pair,
# so the judge can ask whether it combines what it learned (`held_out=False` draws them, for the judge's own data).
HELD_OUT_PAIRS = (("blonde", "blue"), ("red", "grey"), ("black", "pink"))


def zipf_choice(rng: random.Random, values: Sequence[str], exponent: float = ZIPF_EXPONENT) -> str:
    """values[k] with probability proportional to 1 / (k + 1)^exponent."""
    return rng.choices(values, weights=[1 / (k + 1) ** exponent for k in range(len(values))])[0]


def world_figure(rng: random.Random, size: tuple[int, int], held_out: bool = True) -> Figure:
    """One figure of the world on a `size` canvas; the novel accessory is never drawn here, nor (`held_out`)
    a pair of HELD_OUT_PAIRS: its background is drawn again."""
    width, height = size
    hair = zipf_choice(rng, list(WORLD_HAIR))
    backgrounds = [*WORLD_BACKGROUNDS, "gradient"]
    if held_out:
        backgrounds = [b for b in backgrounds if (hair, b) not in HELD_OUT_PAIRS]
    return Figure(
        width=width,
        height=height,
        hair=hair,
        long_hair=rng.random() < 0.5,
        eyes=zipf_choice(rng, list(WORLD_EYES)),
        shirt=zipf_choice(rng, list(WORLD_SHIRTS)),
        smile=rng.random() < 0.6,
        background=zipf_choice(rng, backgrounds),
        cx=width / 2 + rng.uniform(-0.15, 0.15) * width,
        cy=rng.uniform(0.36, 0.46) * height,
        r=rng.uniform(0.15, 0.25) * min(width, height),
        accessory=zipf_choice(rng, list(ACCESSORIES)) if rng.random() < ACCESSORY_RATE else None,
    )


def figure_at(seed: int, index: int, held_out: bool = True) -> Figure:
    """Figure `index` of the world made with `seed`: each from its own generator, so any subset can be redrawn."""
    return world_figure(random.Random(f"world:{seed}:{index}"), SIZES[index % len(SIZES)], held_out)
