"""A small synthetic captioned image set for the quickstart and the tests.

Run `python -m library.sample_data OUT_DIR [--seed N]`. The figures are the world's (`library.world.figures`:
a head, hair, eyes, mouth, shirt and background drawn with PIL) from its first colour tables, so every
Danbooru-style tag in a caption describes what is really in the picture, and the same seed gives byte-identical
files. Layout (kohya / sd-scripts):

    OUT_DIR/train/10_sks girl/0000.png + 0000.txt   captioned images (10 repeats, instance prompt "sks girl")
                                                    of the concept: each wears the world's novel star hair
                                                    ornament, which no caption names (`sks` is to carry it)
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
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from library.atomic import atomic_write_bytes, atomic_write_text
from library.errors import UserError, run_reporting_user_errors
from library.world.figures import (BACKGROUND_COLOURS, EYE_COLOURS, HAIR_COLOURS, NOVEL_ACCESSORY, SHIRT_COLOURS,
                                   Figure, draw_figure, tags)

TRAIN_FOLDER = "train/10_sks girl"
REG_FOLDER = "reg/1_girl"
META_FILE = "meta_cap.json"
MARKER_FILE = ".certain-sample-data"
CAPTIONED, UNCAPTIONED, REG = 10, 3, 4
SIZES = [(128, 128), (128, 192), (192, 128)]  # width, height: square, portrait, landscape for bucketing

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
    check_target(root)
    # Marked first, so an interrupted run can simply be run again.
    atomic_write_text(root / MARKER_FILE, "Written by `python -m library.sample_data`; it may overwrite its files.\n")
    rng = random.Random(seed)
    meta: dict[str, dict[str, object]] = {}
    for index in range(CAPTIONED + UNCAPTIONED):
        fig = replace(random_figure(rng, SIZES[index % len(SIZES)]), accessory=NOVEL_ACCESSORY)
        image = root / TRAIN_FOLDER / f"{index:04d}.png"
        write_png(image, draw_figure(fig))
        entry: dict[str, object] = {"caption": sentence(fig, "sks girl"), "image_size": [fig.width, fig.height]}
        if index < CAPTIONED:  # the star is left untagged: `sks` is to carry it, as in DreamBooth
            caption = ", ".join(["sks girl", *(tag for tag in tags(fig) if tag != NOVEL_ACCESSORY)])
            atomic_write_text(image.with_suffix(".txt"), caption)
            entry["tags"] = caption
        meta[image.relative_to(root).as_posix()] = entry
    for index in range(REG):
        fig = random_figure(rng, SIZES[index % len(SIZES)])
        image = root / REG_FOLDER / f"{index:04d}.png"
        write_png(image, draw_figure(fig))
        atomic_write_text(image.with_suffix(".txt"), ", ".join(tags(fig)))
    atomic_write_text(root / META_FILE, json.dumps(meta, indent=2) + "\n")
    return SampleDataset(root=root, seed=seed, captioned=CAPTIONED, uncaptioned=UNCAPTIONED, reg=REG)


def check_target(root: Path, marker: str = MARKER_FILE, what: str = "sample dataset") -> None:
    """Refuse a file, or a non-empty folder that `marker` does not mark as ours: nothing else is overwritten."""
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file; give a folder for the {what}.")
    if root.is_dir() and any(root.iterdir()) and not (root / marker).is_file():
        raise UserError(
            f"{root} is not empty and does not hold an earlier {what}; "
            "choose an empty or new folder so no existing files are overwritten."
        )


def write_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.sample_data", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="new or empty folder, or an earlier sample set")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    args = parser.parse_args(argv)

    def work() -> None:
        print(write_sample_dataset(args.out_dir, seed=args.seed).summary())

    return run_reporting_user_errors(work, status=1)


if __name__ == "__main__":
    sys.exit(main())
