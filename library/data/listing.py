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
    """One line per subset: folder, repeats, images, how many have captions, the class-token fallback.

    A fine-tuning subset (metadata_file set) shows its metadata file, how many entries it has (a .jsonl is counted
    by lines, not parsed; a read failure is shown in the line), its image folder and its repeats."""
    import json

    def entries(path: str) -> str:
        try:
            if path.lower().endswith(".jsonl"):
                with open(path, encoding="utf-8") as lines:
                    count = sum(1 for line in lines if line.strip())
            else:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
                if not isinstance(data, (dict, list)):
                    return "metadata unreadable (not a JSON object of entries)"
                count = len(data)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"metadata unreadable ({e})"
        return f"{count} entr{'y' if count == 1 else 'ies'}"

    lines = [f"datasets from {datasets.source}:"]
    for number, dataset in enumerate(datasets.datasets, 1):
        size = "x".join(map(str, dataset.resolution)) if dataset.resolution else "default"
        lines.append(f"  dataset {number} ({dataset.kind}, batch {dataset.batch_size}, resolution {size})")
        for subset in dataset.subsets:
            if subset.metadata_file is not None:
                folder = f"images in {subset.image_dir}" if subset.image_dir else "image paths from the metadata"
                lines.append(f"    {subset.metadata_file}: fine-tuning x{subset.num_repeats}, "
                             f"{entries(subset.metadata_file)}, {folder}")
                continue
            images = list_images(subset.image_dir)
            captioned = sum(p.with_suffix(subset.caption_extension).is_file() for p in images)
            role = "reg" if subset.is_reg else "train"
            fallback = f", class tokens '{subset.class_tokens}'" if subset.class_tokens else ""
            lines.append(f"    {subset.image_dir}: {role}, {len(images)} images x{subset.num_repeats}, "
                         f"{captioned} with {subset.caption_extension} captions{fallback}")
    return lines
