"""A small synthetic captioned image set for the quickstart and the tests.

Run `python -m library.sample_data OUT_DIR [--seed N]`. The figures are procedural (a head, hair, eyes,
mouth, shirt and background drawn with PIL), so every Danbooru-style tag in a caption describes what is
really in the picture, and the same seed gives byte-identical files. Layout (kohya / sd-scripts):

    OUT_DIR/train/10_sks girl/0000.png + 0000.txt   captioned images (10 repeats, instance prompt "sks girl")
    OUT_DIR/train/10_sks girl/0010.png              uncaptioned: falls back to the folder's "sks girl"
    OUT_DIR/reg/1_girl/0000.png + 0000.txt          class images for classic prior preservation
    OUT_DIR/meta_cap.json                           sd-scripts fine-tune metadata for the train images

meta_cap.json keys are image paths relative to OUT_DIR. The file names never depend on the seed, so writing
again over an earlier sample dataset replaces exactly the files it wrote.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from library.atomic import atomic_write_bytes, atomic_write_text
from library.errors import UserError

Colour = tuple[int, int, int]

TRAIN_FOLDER = "train/10_sks girl"
REG_FOLDER = "reg/1_girl"
META_FILE = "meta_cap.json"
MARKER_FILE = ".certain-sample-data"
CAPTIONED, UNCAPTIONED, REG = 10, 3, 4
SIZES = [(128, 128), (128, 192), (192, 128)]  # width, height: square, portrait, landscape for bucketing

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
SKIN: Colour = (250, 220, 190)
INK: Colour = (60, 30, 30)


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
    background: str  # a BACKGROUND_COLOURS key, or "gradient"
    cx: float
    cy: float
    r: float


@dataclass(frozen=True)
class SampleDataset:
    """A written sample dataset; its folders and metadata file follow from `root`."""

    root: Path
    seed: int
    captioned: int
    uncaptioned: int
    reg: int

    @property
    def train_dir(self) -> Path:
        return self.root / TRAIN_FOLDER

    @property
    def reg_dir(self) -> Path:
        return self.root / REG_FOLDER

    @property
    def meta_file(self) -> Path:
        return self.root / META_FILE

    def summary(self) -> str:
        return (
            f"Wrote a sample dataset (seed {self.seed}) to {self.root}: {self.captioned} captioned and "
            f"{self.uncaptioned} uncaptioned training images in '{TRAIN_FOLDER}' (instance prompt 'sks girl', "
            f"10 repeats; uncaptioned images fall back to it), {self.reg} captioned class images in "
            f"'{REG_FOLDER}' for prior preservation, and fine-tune metadata for the training images in "
            f"{META_FILE}."
        )


def random_figure(rng: random.Random, size: tuple[int, int]) -> Figure:
    """Random looks and a random but fully visible upper-body pose on a `size` canvas."""
    width, height = size
    r = rng.uniform(0.17, 0.23) * min(width, height)
    return Figure(
        width=width,
        height=height,
        hair=rng.choice(sorted(HAIR_COLOURS)),
        long_hair=rng.random() < 0.5,
        eyes=rng.choice(sorted(EYE_COLOURS)),
        shirt=rng.choice(sorted(SHIRT_COLOURS)),
        smile=rng.random() < 0.6,
        background=rng.choice([*sorted(BACKGROUND_COLOURS), "gradient"]),
        cx=width / 2 + rng.uniform(-0.15, 0.15) * width,
        cy=rng.uniform(0.36, 0.46) * height,
        r=r,
    )


def draw_figure(fig: Figure) -> Image.Image:
    """An RGB picture of `fig`, back to front: background, long hair, shirt, face, bangs, eyes, mouth."""
    image = Image.new("RGB", (fig.width, fig.height))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, fig)
    cx, cy, r = fig.cx, fig.cy, fig.r
    hair = HAIR_COLOURS[fig.hair]
    if fig.long_hair:
        draw.rounded_rectangle((cx - 1.25 * r, cy - 1.1 * r, cx + 1.25 * r, cy + 2.4 * r), radius=r, fill=hair)
    shoulders = [(cx - 0.6 * r, cy + 0.9 * r), (cx + 0.6 * r, cy + 0.9 * r)]
    draw.polygon([*shoulders, (cx + 1.7 * r, fig.height), (cx - 1.7 * r, fig.height)], fill=SHIRT_COLOURS[fig.shirt])
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SKIN)
    draw.chord((cx - 1.08 * r, cy - 1.12 * r, cx + 1.08 * r, cy + 0.5 * r), 180, 360, fill=hair)
    eye_r, eye_y = max(2.0, 0.14 * r), cy + 0.05 * r
    for ex in (cx - 0.38 * r, cx + 0.38 * r):
        draw.ellipse((ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), fill=EYE_COLOURS[fig.eyes])
    if fig.smile:
        draw.arc((cx - 0.3 * r, cy + 0.2 * r, cx + 0.3 * r, cy + 0.6 * r), 20, 160, fill=INK, width=2)
    else:
        draw.line((cx - 0.2 * r, cy + 0.5 * r, cx + 0.2 * r, cy + 0.5 * r), fill=INK, width=2)
    return image


def _draw_background(draw: ImageDraw.ImageDraw, fig: Figure) -> None:
    if fig.background != "gradient":
        draw.rectangle((0, 0, fig.width, fig.height), fill=BACKGROUND_COLOURS[fig.background])
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
        "upper body",
        *background,
    ]


def sentence(fig: Figure, subject: str) -> str:
    """A natural-language caption, the "caption" half of fine-tune metadata."""
    hair = f"{'long' if fig.long_hair else 'short'} {fig.hair} hair"
    mood = "smiling" if fig.smile else "with a closed mouth"
    background = "a gradient" if fig.background == "gradient" else f"a plain {fig.background}"
    return (
        f"a drawing of {subject} with {hair} and {fig.eyes} eyes, {mood}, "
        f"wearing a {fig.shirt} shirt, on {background} background"
    )


def write_sample_dataset(out_dir: Path, seed: int = 0) -> SampleDataset:
    """Write the sample dataset into `out_dir`: an empty or missing folder, or an earlier sample dataset.

    Any other non-empty folder is refused, so a mistyped path never mixes these files into real data.
    """
    root = Path(out_dir).absolute()
    _check_target(root)
    # Marked first, so an interrupted run can simply be run again.
    atomic_write_text(root / MARKER_FILE, "Written by `python -m library.sample_data`; it may overwrite its files.\n")
    rng = random.Random(seed)
    meta: dict[str, dict[str, object]] = {}
    for index in range(CAPTIONED + UNCAPTIONED):
        fig = random_figure(rng, SIZES[index % len(SIZES)])
        image = root / TRAIN_FOLDER / f"{index:04d}.png"
        _write_png(image, draw_figure(fig))
        entry: dict[str, object] = {"caption": sentence(fig, "sks girl"), "image_size": [fig.width, fig.height]}
        if index < CAPTIONED:
            caption = ", ".join(["sks girl", *tags(fig)])
            atomic_write_text(image.with_suffix(".txt"), caption)
            entry["tags"] = caption
        meta[image.relative_to(root).as_posix()] = entry
    for index in range(REG):
        fig = random_figure(rng, SIZES[index % len(SIZES)])
        image = root / REG_FOLDER / f"{index:04d}.png"
        _write_png(image, draw_figure(fig))
        atomic_write_text(image.with_suffix(".txt"), ", ".join(tags(fig)))
    atomic_write_text(root / META_FILE, json.dumps(meta, indent=2) + "\n")
    return SampleDataset(root=root, seed=seed, captioned=CAPTIONED, uncaptioned=UNCAPTIONED, reg=REG)


def _check_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file; give a folder for the sample dataset.")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER_FILE).is_file():
        raise UserError(
            f"{root} is not empty and does not hold an earlier sample dataset; "
            "choose an empty or new folder so no existing files are overwritten."
        )


def _write_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.sample_data", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="new or empty folder, or an earlier sample set")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    args = parser.parse_args(argv)
    try:
        dataset = write_sample_dataset(args.out_dir, seed=args.seed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(dataset.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
