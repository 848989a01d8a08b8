"""Latent cache: each image is encoded once (centre crop, plus its mirror image with flip_aug) and reused.

In memory the latents live for the run. On disk each image gets `<image name>.<w>x<h>.latents.safetensors`
beside it (the bucket size is in the name so one folder can train at two resolutions, which kohya allows,
without the caches overwriting each other). The file's metadata holds the key it was made for, and a file
whose key differs is encoded again. The key is:

- the image's byte size and mtime_ns: a stat, no read. Editors and copy tools set a new mtime, so a
  changed image is re-encoded; a copy that keeps neither only costs one re-encode. Hashing the bytes
  would read the whole dataset at every start;
- the bucket, resized size, crop and resize filter (so a new resolution or bucket setting re-encodes);
- `vae_id`, whatever string identifies the VAE's weights (the caller's choice, e.g. a file hash).

`skip_cache_check` (kohya's option) trusts any existing file that holds the tensors needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm import tqdm

from ..atomic import atomic_write_bytes
from ..errors import UserError
from .buckets import crop_origin
from .images import load_rgb
from .items import Item
from .pixels import Augment, render, to_batch

FORMAT = 1
PLAIN, FLIPPED = "latents", "latents_flipped"
Encode = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CachedLatents:
    """One item's latents: in memory (`plain`, `flipped`) or in `file`, read when a batch needs them."""

    plain: torch.Tensor | None = None
    flipped: torch.Tensor | None = None
    file: Path | None = None

    def get(self, flip: bool) -> torch.Tensor:
        if self.file is None:
            return (self.flipped if flip else self.plain).float()
        with safe_open(str(self.file), "pt") as stored:
            return stored.get_tensor(FLIPPED if flip else PLAIN).float()


def cache_file(item: Item) -> Path:
    width, height = item.placement.bucket
    return item.path.with_name(f"{item.path.name}.{width}x{height}.latents.safetensors")


def cache_key(item: Item, vae_id: str) -> str:
    stat = item.path.stat()
    return json.dumps({
        "format": FORMAT, "image": [stat.st_size, stat.st_mtime_ns], "bucket": item.placement.bucket,
        "resized": item.placement.resized, "crop": crop_origin(item.placement),
        "filter": item.subset.resize_interpolation, "vae": vae_id,
    }, sort_keys=True)


def fill_cache(items: list[Item], encode: Encode, vae_id: str, *, to_disk: bool, batch_size: int,
               trust_existing: bool = False, progress: bool = True) -> dict[int, CachedLatents]:
    """Latents for every item (index -> CachedLatents), encoding only what no valid disk file holds.

    `encode` gets float32 pixels [B, 3, H, W] in [-1, 1] on the CPU, all of one bucket size, and returns
    latents [B, 4, H/8, W/8] already times the VAE scaling factor; it moves them to its device itself.
    Latents are kept on the CPU in the dtype `encode` returns (and read back as float32)."""
    cache: dict[int, CachedLatents] = {}
    todo = []
    for index, item in enumerate(items):
        if to_disk and _reusable(cache_file(item), cache_key(item, vae_id), item.subset.flip_aug, trust_existing):
            cache[index] = CachedLatents(file=cache_file(item))
        else:
            todo.append(index)
    for index, plain, flipped in _encoded(items, todo, encode, batch_size, progress):
        if to_disk:
            cache[index] = CachedLatents(file=_write(items[index], vae_id, plain, flipped))
        else:
            cache[index] = CachedLatents(plain, flipped)
    return cache


def _reusable(file: Path, key: str, need_flipped: bool, trust_existing: bool) -> bool:
    if not file.is_file():
        return False
    try:
        with safe_open(str(file), "pt") as stored:
            names, stored_key = set(stored.keys()), (stored.metadata() or {}).get("key")
    except Exception:  # a damaged cache file is simply made again
        return False
    has_tensors = PLAIN in names and (FLIPPED in names or not need_flipped)
    return has_tensors and (trust_existing or stored_key == key)


def _encoded(items: list[Item], todo: list[int], encode: Encode, batch_size: int,
             progress: bool) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """(index, latents, mirrored latents or None), batch by batch of one bucket size each."""
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for index in todo:
        by_bucket.setdefault(items[index].placement.bucket, []).append(index)
    chunks = [indices[i:i + batch_size] for indices in by_bucket.values() for i in range(0, len(indices), batch_size)]
    if progress and chunks:
        chunks = tqdm(chunks, desc="caching latents", unit="batch")
    for chunk in chunks:
        pixels = to_batch([render(load_rgb(items[i].path), items[i].placement, items[i].subset.resize_interpolation,
                                  Augment()) for i in chunk])
        mirrored = [n for n, i in enumerate(chunk) if items[i].subset.flip_aug]
        with torch.no_grad():
            latents = _checked(encode(pixels), len(chunk)).cpu()
            flipped = _checked(encode(pixels[mirrored].flip(-1)), len(mirrored)).cpu() if mirrored else None
        mirror_of = {n: m for m, n in enumerate(mirrored)}
        for n, index in enumerate(chunk):
            yield index, latents[n].clone(), flipped[mirror_of[n]].clone() if n in mirror_of else None


def _checked(latents: torch.Tensor, count: int) -> torch.Tensor:
    if latents.ndim != 4 or latents.shape[0] != count:
        raise ValueError(f"encode returned shape {tuple(latents.shape)} for {count} images; expected [B, C, h, w]")
    return latents


def _write(item: Item, vae_id: str, plain: torch.Tensor, flipped: torch.Tensor | None) -> Path:
    file = cache_file(item)
    tensors = {PLAIN: plain.contiguous()} | ({FLIPPED: flipped.contiguous()} if flipped is not None else {})
    try:
        atomic_write_bytes(file, save(tensors, metadata={"key": cache_key(item, vae_id)}))
    except OSError as exc:
        raise UserError(f"{file}: cannot write the latent cache ({exc}). Make the image folder writable, or use "
                        "cache_latents without cache_latents_to_disk.") from exc
    return file
