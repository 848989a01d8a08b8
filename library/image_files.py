"""Which files of a folder are images, for the config checks and the data pipeline alike.

kohya reads `.png .jpg .jpeg .webp .bmp` in either case, non-recursively, in sorted order; so do we, so a
folder trains on the same images with either tool.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
