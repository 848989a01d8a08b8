"""Which files of a subset folder are images, and a short account of the configured datasets.

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


def describe_datasets(datasets) -> list[str]:
    """One line per subset: folder, repeats, images, how many have captions, the class-token fallback."""
    lines = [f"datasets from {datasets.source}:"]
    for number, dataset in enumerate(datasets.datasets, 1):
        size = "x".join(map(str, dataset.resolution)) if dataset.resolution else "default"
        lines.append(f"  dataset {number} ({dataset.kind}, batch {dataset.batch_size}, resolution {size})")
        for subset in dataset.subsets:
            if subset.image_dir is None:
                lines.append(f"    {subset.metadata_file}: metadata subset x{subset.num_repeats}")
                continue
            images = list_images(subset.image_dir)
            captioned = sum(p.with_suffix(subset.caption_extension).is_file() for p in images)
            role = "reg" if subset.is_reg else "train"
            fallback = f", class tokens '{subset.class_tokens}'" if subset.class_tokens else ""
            lines.append(f"    {subset.image_dir}: {role}, {len(images)} images x{subset.num_repeats}, "
                         f"{captioned} with {subset.caption_extension} captions{fallback}")
    return lines
