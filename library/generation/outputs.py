"""Output files: `<5-digit index>-<seed>.png` with its infotext, and an optional same-named caption."""

from __future__ import annotations

import re
from pathlib import Path

from ..atomic import atomic_write_text
from ..sampling.generate import GeneratedImage
from ..sampling.infotext import save_png

NUMBERED = re.compile(r"^(\d{5,})-(-?\d+)\.png$")


def numbered_files(folder: Path) -> dict[int, tuple[Path, int]]:
    """Index → (file, seed) of the numbered PNGs already in `folder`."""
    found: dict[int, tuple[Path, int]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = NUMBERED.match(path.name)
            if match:
                found[int(match[1])] = (path, int(match[2]))
    return found


def next_index(folder: Path) -> int:
    """The counter after the highest numbered PNG in `folder` (A1111's file counter)."""
    return max(numbered_files(folder), default=-1) + 1


def image_path(folder: Path, index: int, seed: int) -> Path:
    return folder / f"{index:05d}-{seed}.png"


def save_image(result: GeneratedImage, path: Path, caption: str | None = None) -> Path:
    """The PNG with its infotext and, when `caption` is given, `path.txt` (kohya's caption) first."""
    if caption is not None:
        atomic_write_text(path.with_suffix(".txt"), caption + "\n")
    return save_png(result.image, path, result.infotext)
