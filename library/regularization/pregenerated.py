"""Pregenerated word-frequency regularization: for GPUs too slow to generate while training.

`gen_reg_images.py --wordfreq` makes a folder of single-word images from the base model (`manifest.jsonl` lists
index, word, seed and file). This stream mixes them in on the same schedule as the self-generated stream, each
image once per cycle through the folder, in an order shuffled per cycle from the run's seed. Images are fitted
(centre crop, Lanczos) to the regularization size and encoded by the trainer's VAE like any pixel batch.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.batch import Batch
from ..errors import UserError
from ..plugins import LoopContext
from .manifest import MANIFEST, read_manifest
from .stream import RegMix, check_mode
from .wordfreq import caption_form

MODE = "pregenerated_wordfreq"


@dataclass(frozen=True)
class RegImage:
    path: Path
    word: str
    seed: int


def read_reg_folder(folder: str | Path) -> tuple[list[RegImage], list[RegImage]]:
    """(present, missing) images of a `gen_reg_images.py --wordfreq` folder, in index order."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not folder.is_dir():
        raise UserError(f"reg_images_dir {folder}: no such folder; make one with gen_reg_images.py --wordfreq LIST "
                        f"--outdir {folder}")
    if not manifest.is_file():
        raise UserError(f"reg_images_dir {folder}: no {MANIFEST}, so this is not a gen_reg_images.py --wordfreq "
                        f"folder (class images for prior preservation go in reg_data_dir with reg_mode = \"prior\")")
    images, missing = [], []
    for record in sorted(read_manifest(manifest), key=lambda r: int(r["index"])):
        path = folder / record["file"]
        (images if path.is_file() else missing).append(RegImage(path, str(record["word"]), int(record["seed"])))
    if not images:
        raise UserError(f"reg_images_dir {folder}: {MANIFEST} lists no existing image; generate them first")
    return images, missing


def cycle_order(count: int, seed: int, cycle: int) -> list[int]:
    """The order of the folder's images in cycle `cycle`: a permutation, a pure function of seed and cycle."""
    order = list(range(count))
    random.Random(f"reg-cycle:{seed}:{cycle}").shuffle(order)
    return order


def load_pixels(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image, ImageOps

    from ..data.images import load_rgb
    from ..data.pixels import to_batch

    return to_batch([ImageOps.fit(load_rgb(p), size, Image.Resampling.LANCZOS) for p in paths])


@dataclass
class PregeneratedStream:
    """Stream "reg" from a folder: each image used once per cycle, `mix` as for the self-generated stream."""

    images: list[RegImage]
    mix: RegMix
    size: tuple[int, int]  # (width, height)
    seed: int
    train_images_per_step: int
    loss_weight: float = 1.0
    name: str = "reg"
    credit: float = 0.0
    images_made: int = 0  # images used so far, over all processes (position in the endless cycle sequence)
    counts: Counter = field(default_factory=Counter)
    generation_seconds: float = 0.0  # nothing is generated: the monitor reports no generation share
    _order: tuple[int, list[int]] = (-1, [])  # the current cycle and its order

    def next_images(self, n: int) -> list[RegImage]:
        """The next `n` images of the cycle sequence (a cycle ends, the next begins reshuffled)."""
        picked = []
        for position in range(self.images_made, self.images_made + n):
            cycle, index = divmod(position, len(self.images))
            if self._order[0] != cycle:
                self._order = (cycle, cycle_order(len(self.images), self.seed, cycle))
            picked.append(self.images[self._order[1][index]])
        self.images_made += n
        return picked

    def batches_for_step(self, ctx: LoopContext, step: int) -> list[Batch]:
        count, self.credit = self.mix.images(step, self.train_images_per_step, self.credit)
        if count == 0:
            return []
        rank, world = ctx.rank, ctx.world_size
        everyone = self.next_images(count * world)
        self.counts.update(image.word for image in everyone)
        mine = everyone[rank * count:(rank + 1) * count]
        return [Batch(captions=[caption_form(i.word) for i in mine], pixels=load_pixels([i.path for i in mine],
                                                                                           self.size),
                      loss_weights=torch.full((count,), float(self.loss_weight)),
                      keys=[f"reg:{i.path.name}" for i in mine], stream=self.name)]

    def state_dict(self) -> dict[str, Any]:
        return {"mode": MODE, "credit": self.credit, "images_made": self.images_made, "counts": dict(self.counts),
                "folder_size": len(self.images)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not check_mode(state, MODE):
            return
        if state["folder_size"] != len(self.images):
            print(f"note: the regularization folder held {state['folder_size']} images when the state was saved "
                  f"and holds {len(self.images)} now; the image order from here on differs from the original run",
                  file=sys.stderr)
        self.credit = float(state["credit"])
        self.images_made = int(state["images_made"])
        self.counts = Counter(state["counts"])
