"""What a subset holds: its usable images with caption and size, and a reason for every file left out.

DreamBooth subsets are folders (captions in `<stem><caption_extension>` beside each image, class tokens
for images without one); fine-tuning subsets are metadata files (see metadata.py). Image headers are read
on a few threads: the work is file I/O and PIL releases the GIL while decoding.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..config.dataset_spec import SubsetSpec
from ..image_files import list_images
from .buckets import Placement, Size
from .captions import read_caption_file
from .images import probe_image
from .problems import Unusable

SHOWN_NAMES = 5  # file names quoted in a note before "and N more"


@dataclass(frozen=True)
class Entry:
    """One usable image. `tags` is the text counted for ss_tag_frequency (DreamBooth: the caption;
    fine-tuning: the metadata tags)."""

    path: Path
    caption: str
    size: Size
    tags: str = ""


@dataclass(frozen=True)
class Item:
    """One image as training uses it: an entry of a subset with its repeats, bucket and loss weight."""

    path: Path
    caption: str
    subset: SubsetSpec
    dataset: int
    repeats: int
    size: Size
    placement: Placement
    loss_weight: float = 1.0


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path: reason"
    notes: list[str] = field(default_factory=list)


def scan_dreambooth(subset: SubsetSpec) -> Scan:
    folder = Path(subset.image_dir)
    scan = Scan()
    if not folder.is_dir():
        scan.problems.append(f"{folder}: folder not found")
        return scan
    found: list[tuple[Path, str, str]] = []
    missing: list[str] = []
    empty: list[str] = []
    for image in list_images(folder):
        caption_file = image.with_suffix(subset.caption_extension)
        try:
            text = read_caption_file(caption_file, subset.enable_wildcard)
        except Unusable as exc:
            scan.problems.append(f"{caption_file}: {exc}")
            continue
        if not text:
            (missing if text is None else empty).append(image.name)
            text = subset.class_tokens or ""
        found.append((image, text, text))
    fallback = f"class tokens '{subset.class_tokens}'" if subset.class_tokens else "an EMPTY caption"
    if missing:
        scan.notes.append(f"{folder}: {_names(missing)} without a {subset.caption_extension} caption use {fallback}")
    if empty:
        scan.notes.append(f"{folder}: {_names(empty)} with an empty {subset.caption_extension} file use {fallback}")
    return add_probed(scan, found)


def add_probed(scan: Scan, found: list[tuple[Path, str, str]]) -> Scan:
    """Read the header of each (image, caption, tags); usable images become entries, the others problems."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        sizes = list(pool.map(_probe, [path for path, _, _ in found]))
    for (path, caption, tags), size in zip(found, sizes, strict=True):
        if isinstance(size, Unusable):
            scan.problems.append(f"{path}: {size}")
        else:
            scan.entries.append(Entry(path, caption, size, tags))
    return scan


def _probe(path: Path) -> Size | Unusable:
    try:
        return probe_image(path)
    except Unusable as exc:
        return exc


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    more = f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return f"{len(names)} image{'s' if len(names) != 1 else ''} ({shown}{more})"

