"""The world's figures: what a picture can show, how it is drawn, and the tags that say exactly what is drawn.

A figure is a head, hair, eyes, mouth, shirt and background drawn with PIL in flat colours and outlines, so every
Danbooru-style tag describes what is really in the picture. The sample dataset (`library.sample_data`) draws from
the first tables; the world (`library.world.sampling`) from the larger `WORLD_*` ones and the accessories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw

Colour = tuple[int, int, int]

HAIR_COLOURS: dict[str, Colour] = {
    "black": (30, 30, 36),
    "blonde": (240, 210, 110),
    "brown": (120, 74, 40),
    "red": (200, 40, 40),
    "blue": (60, 90, 220),
    "pink": (240, 140, 190),
    "white": (236, 236, 242),
    "green": (60, 160, 80),
}
EYE_COLOURS: dict[str, Colour] = {
    "blue": (40, 110, 230),
    "green": (30, 150, 60),
    "red": (210, 20, 30),
    "brown": (110, 60, 20),
    "purple": (140, 60, 190),
}
SHIRT_COLOURS: dict[str, Colour] = {
    "white": (250, 250, 250),
    "black": (20, 20, 20),
    "red": (220, 50, 50),
    "blue": (50, 80, 200),
    "yellow": (245, 215, 60),
}
BACKGROUND_COLOURS: dict[str, Colour] = {
    "white": (255, 255, 255),
    "grey": (160, 160, 160),
    "blue": (150, 190, 240),
    "pink": (250, 200, 215),
}
GRADIENT: tuple[Colour, Colour] = ((120, 170, 240), (250, 250, 255))  # top, bottom
# The world has more of each; the sample dataset keeps to the tables above (only its star was ever redrawn).
WORLD_HAIR: dict[str, Colour] = {**HAIR_COLOURS, "purple": (130, 70, 180), "orange": (240, 140, 40),
                                  "grey": (130, 130, 140)}
WORLD_EYES: dict[str, Colour] = {**EYE_COLOURS, "yellow": (225, 190, 30), "grey": (120, 120, 130)}
WORLD_SHIRTS: dict[str, Colour] = {**SHIRT_COLOURS, "green": (50, 150, 70), "pink": (240, 150, 190),
                                   "purple": (120, 60, 170)}
WORLD_BACKGROUNDS: dict[str, Colour] = {**BACKGROUND_COLOURS, "yellow": (250, 235, 160), "green": (180, 225, 170),
                                        "purple": (205, 185, 235), "black": (25, 25, 30)}
ACCESSORIES: dict[str, Colour] = {"hair bow": (230, 40, 90), "glasses": (20, 20, 20), "hat": (110, 70, 40)}
NOVEL_ACCESSORY = "star hair ornament"  # drawn in no pretraining image: the concept the quickstart teaches
STAR: Colour = (255, 200, 0)
SKIN: Colour = (250, 220, 190)
INK: Colour = (60, 30, 30)
# The tags a caption can say about each attribute (an attribute may go unsaid): what the text encoder learns to
# read in pretraining; the judge reads the same groups back from pictures (with "no accessory" and the star added).
TAG_GROUPS: dict[str, list[str]] = {
    "hair": [f"{name} hair" for name in WORLD_HAIR],
    "hair length": ["long hair", "short hair"],
    "eyes": [f"{name} eyes" for name in WORLD_EYES],
    "shirt": [f"{name} shirt" for name in WORLD_SHIRTS],
    "mouth": ["smile", "closed mouth"],
    "background": [*(f"{name} background" for name in WORLD_BACKGROUNDS), "gradient background"],
    "accessory": list(ACCESSORIES),
}


@dataclass(frozen=True)
class Figure:
    """What one picture shows and where: everything needed to draw it and to caption it."""

    width: int
    height: int
    hair: str
    long_hair: bool
    eyes: str
    shirt: str
    smile: bool
    background: str  # a WORLD_BACKGROUNDS key, or "gradient"
    cx: float
    cy: float
    r: float
    accessory: str | None = None  # an ACCESSORIES key (NOVEL_ACCESSORY only for a concept to be learned)


def by_canvas(figs: list[Figure]) -> dict[tuple[int, int], list[int]]:
    """The indices of `figs` by canvas size (width, height), in order: one batch per size."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, fig in enumerate(figs):
        groups.setdefault((fig.width, fig.height), []).append(index)
    return groups


def draw_figure(fig: Figure) -> Image.Image:
    """An RGB picture of `fig`, back to front: background, long hair, shirt, face, bangs, eyes, mouth."""
    image = Image.new("RGB", (fig.width, fig.height))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, fig)
    cx, cy, r = fig.cx, fig.cy, fig.r
    hair = WORLD_HAIR[fig.hair]
    if fig.long_hair:
        draw.rounded_rectangle((cx - 1.25 * r, cy - 1.1 * r, cx + 1.25 * r, cy + 2.4 * r), radius=r, fill=hair)
    shoulders = [(cx - 0.6 * r, cy + 0.9 * r), (cx + 0.6 * r, cy + 0.9 * r)]
    draw.polygon([*shoulders, (cx + 1.7 * r, fig.height), (cx - 1.7 * r, fig.height)], fill=WORLD_SHIRTS[fig.shirt])
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SKIN)
    draw.chord((cx - 1.08 * r, cy - 1.12 * r, cx + 1.08 * r, cy + 0.5 * r), 180, 360, fill=hair)
    eye_r, eye_y = max(2.0, 0.14 * r), cy + 0.05 * r
    for ex in (cx - 0.38 * r, cx + 0.38 * r):
        draw.ellipse((ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), fill=WORLD_EYES[fig.eyes])
    if fig.smile:
        draw.arc((cx - 0.3 * r, cy + 0.2 * r, cx + 0.3 * r, cy + 0.6 * r), 20, 160, fill=INK, width=2)
    else:
        draw.line((cx - 0.2 * r, cy + 0.5 * r, cx + 0.2 * r, cy + 0.5 * r), fill=INK, width=2)
    if fig.accessory is not None:
        _draw_accessory(draw, fig)
    return image


def star_place(fig: Figure) -> tuple[float, float, float]:
    """Where the novel star sits, (x, y, outer radius): above the right temple, large, so that the tiny VAE's
    8-pixel latent keeps its shape."""
    return fig.cx + 0.75 * fig.r, fig.cy - 0.8 * fig.r, 0.6 * fig.r


def _draw_accessory(draw: ImageDraw.ImageDraw, fig: Figure) -> None:
    """Each accessory has its own shape and place, so a judge can tell them apart."""
    cx, cy, r = fig.cx, fig.cy, fig.r
    if fig.accessory == NOVEL_ACCESSORY:  # a large five-pointed star above the right temple
        sx, sy, outer = star_place(fig)
        points = [(sx + (outer if k % 2 == 0 else 0.5 * outer) * math.sin(k * math.pi / 5),
                   sy - (outer if k % 2 == 0 else 0.5 * outer) * math.cos(k * math.pi / 5)) for k in range(10)]
        draw.polygon(points, fill=STAR, outline=INK)
    elif fig.accessory == "hair bow":  # two triangles on top of the head
        top = cy - 1.05 * r
        draw.polygon([(cx, top), (cx - 0.5 * r, top - 0.3 * r), (cx - 0.5 * r, top + 0.3 * r)], fill=ACCESSORIES["hair bow"])
        draw.polygon([(cx, top), (cx + 0.5 * r, top - 0.3 * r), (cx + 0.5 * r, top + 0.3 * r)], fill=ACCESSORIES["hair bow"])
    elif fig.accessory == "glasses":  # rings round the eyes and a bridge
        eye_r, eye_y = max(3.0, 0.24 * r), cy + 0.05 * r
        for ex in (cx - 0.38 * r, cx + 0.38 * r):
            draw.ellipse((ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), outline=ACCESSORIES["glasses"], width=2)
        draw.line((cx - 0.38 * r + eye_r, eye_y, cx + 0.38 * r - eye_r, eye_y), fill=ACCESSORIES["glasses"], width=2)
    elif fig.accessory == "hat":  # a brim and a crown over the hair
        colour = ACCESSORIES["hat"]
        draw.rectangle((cx - 1.3 * r, cy - 0.85 * r, cx + 1.3 * r, cy - 0.65 * r), fill=colour)
        draw.rectangle((cx - 0.8 * r, cy - 1.6 * r, cx + 0.8 * r, cy - 0.8 * r), fill=colour)
    else:
        raise ValueError(f"unknown accessory {fig.accessory!r}")


def _draw_background(draw: ImageDraw.ImageDraw, fig: Figure) -> None:
    if fig.background != "gradient":
        draw.rectangle((0, 0, fig.width, fig.height), fill=WORLD_BACKGROUNDS[fig.background])
        return
    top, bottom = GRADIENT
    for y in range(fig.height):
        t = y / (fig.height - 1)
        draw.line((0, y, fig.width, y), fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))


def tags(fig: Figure) -> list[str]:
    """Danbooru-style tags for what `draw_figure` draws, in the usual tagger order."""
    if fig.background == "gradient":
        background = ["gradient background"]
    else:
        background = ["simple background", f"{fig.background} background"]
    return [
        "1girl",
        "solo",
        "long hair" if fig.long_hair else "short hair",
        f"{fig.hair} hair",
        f"{fig.eyes} eyes",
        "smile" if fig.smile else "closed mouth",
        f"{fig.shirt} shirt",
        *([fig.accessory] if fig.accessory else []),
        "upper body",
        *background,
    ]
