"""The training data the loop consumes: `build_training_data` once, then plans and batches per epoch.

The loop asks for an epoch's plans (`epoch_plan`, pure), hands them to `iterate_batches` (from loader.py) or
calls `load_batch` itself, and may call `cache_latents` once before training. Everything a batch needs is
in its plan, so workers, resumed runs and ranks all rebuild the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from ..config.dataset_spec import DatasetConfig
from ..config.train_config import TrainConfig
from ..errors import UserError
from ..image_files import IMAGE_EXTENSIONS
from .batch import Batch
from .buckets import Size
from .build import collect
from .captions import render_caption
from .images import load_rgb
from .items import Item
from .latent_cache import CachedLatents, Encode, fill_cache
from .loader import iterate_batches
from .pixels import choose_augment, render, to_batch
from .plan import BatchPlan, BucketGroup, TrainingLength, batches_per_epoch, epoch_plan

__all__ = ["BatchPlan", "TrainingData", "build_training_data", "iterate_batches"]  # the loop's whole interface

SHOWN_PROBLEMS = 20  # in an error message; describe() lists them all
# Subset settings that make a sample differ from one use to the next, turned off for validation.
PLAIN = dict(shuffle_caption=False, caption_dropout_rate=0.0, caption_dropout_every_n_epochs=0,
             caption_tag_dropout_rate=0.0, token_warmup_step=0.0, color_aug=False, flip_aug=False, random_crop=False)


@dataclass(eq=False)
class TrainingData:
    """Items (images with repeats, bucket, loss weight) and their bucket groups; plans index into `items`."""

    items: list[Item]
    groups: list[BucketGroup]
    length: TrainingLength
    summary: list[str]
    problems: list[str]  # "path: reason" for every file skipped
    notes: list[str]
    tag_frequency: dict[str, dict[str, int]]  # folder or metadata file name -> tag -> count (ss_tag_frequency)
    held_out: list[Item] = field(default_factory=list)  # validation_split images, not trained
    trust_cache: bool = False  # skip_cache_check
    latents: dict[int, CachedLatents] = field(default_factory=dict)  # item index -> latents, once cached

    def describe(self) -> list[str]:
        """What the user should see before training: datasets, bucket tables, notes, skipped files."""
        lines = [*self.summary, f"{self.batches_per_epoch()} batches per epoch"]
        lines += [f"note: {note}" for note in self.notes]
        if self.problems:
            lines.append(f"skipped {len(self.problems)} unusable file(s) (--strict_data stops instead):")
            lines += [f"  {problem}" for problem in self.problems]
        return lines

    def batches_per_epoch(self, world_size: int = 1) -> int:
        return batches_per_epoch(self.groups, world_size)

    def epoch_plan(self, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> list[BatchPlan]:
        """This rank's batches of `epoch` (counted from 0), in training order; the same arguments always give
        the same plans, so resuming at batch k is `epoch_plan(...)[k:]`."""
        return epoch_plan(self.groups, self.length, epoch, seed, rank, world_size)

    def load_batch(self, plan: BatchPlan) -> Batch:
        """The batch of `plan`, the same every time: latents once cached, else pixels (each image decoded
        once per batch)."""
        items = [self.items[index] for index, _ in plan.samples]
        seeds = [seed for _, seed in plan.samples]
        augments = [choose_augment(item.subset, item.placement, seed) for item, seed in zip(items, seeds)]
        captions = [render_caption(item.caption, item.subset, seed, epoch=plan.epoch, step=plan.step,
                                   max_steps=plan.max_steps) for item, seed in zip(items, seeds)]
        weights = torch.tensor([item.loss_weight for item in items], dtype=torch.float32)
        keys = [str(item.path) for item in items]
        if self.latents:
            latents = [self.latents[index].get(augment.flip) for (index, _), augment in zip(plan.samples, augments)]
            return Batch(captions, weights, latents=torch.stack(latents), keys=keys)
        decoded: dict[int, Image.Image] = {}
        images = []
        for (index, _), item, augment in zip(plan.samples, items, augments):
            if index not in decoded:
                decoded[index] = load_rgb(item.path)
            images.append(render(decoded[index], item.placement, item.subset.resize_interpolation, augment))
        return Batch(captions, weights, pixels=to_batch(images), keys=keys)

    def validation_data(self) -> TrainingData | None:
        """The held-out images as data of their own (None without any): each image once per epoch, in its
        dataset's batch size, so `epoch_plan(0, seed)` is a fixed validation pass. Augmentations and caption
        dropout, shuffling and warmup are off: every evaluation scores the same pictures with whole captions."""
        if not self.held_out:
            return None
        items = [replace(item, subset=replace(item.subset, **PLAIN)) for item in self.held_out]
        sizes = {group.dataset: group.batch_size for group in self.groups}
        members: dict[tuple[int, Size], list[int]] = {}
        for index, item in enumerate(items):
            members.setdefault((item.dataset, item.placement.bucket), []).append(index)
        groups = [BucketGroup(dataset, bucket, tuple(indices), sizes.get(dataset, 1))
                  for (dataset, bucket), indices in sorted(members.items())]
        return TrainingData(items, groups, TrainingLength(max_train_steps=1), [], [], [], {})

    def cache_latents(self, encode: Encode, vae_id: str, *, to_disk: bool, batch_size: int,
                      progress: bool = True) -> None:
        """Encode every image once; afterwards `load_batch` returns latents. `encode` is called with float32
        CPU pixels [B, 3, H, W] in [-1, 1] of one bucket size and returns latents [B, 4, H/8, W/8] already
        times the VAE scaling factor. Call it before the first `iterate_batches` with persistent workers."""
        self.latents = fill_cache(self.items, encode, vae_id, to_disk=to_disk, batch_size=batch_size,
                                  trust_existing=self.trust_cache, progress=progress)


def build_training_data(datasets: DatasetConfig, train: TrainConfig, *, strict_data: bool = False) -> TrainingData:
    """Scan every subset and make the buckets; raises UserError for an empty dataset (and, with
    `strict_data`, for any unusable file) before a model is loaded."""
    found = collect(datasets, train)
    if strict_data and found.problems:
        raise UserError(f"{len(found.problems)} unusable file(s) and --strict_data is on:\n"
                        + _listed(found.problems) + "\nFix or remove them, or drop --strict_data to skip them.")
    if not found.items:
        raise UserError(_empty_message(datasets, found.problems))
    training = train.training
    length = TrainingLength(training.gradient_accumulation_steps, training.max_train_steps, training.max_train_epochs)
    return TrainingData(found.items, found.groups, length, found.summary, found.problems, found.notes,
                        found.tag_frequency, found.held_out, train.dataset.skip_cache_check)


def _empty_message(datasets: DatasetConfig, problems: list[str]) -> str:
    sources = "\n".join(f"  {s.metadata_file or s.image_dir}" for s in datasets.subsets if not s.is_reg)
    message = (f"no training images found in:\n{sources}\nA DreamBooth folder should hold images "
               f"({' '.join(IMAGE_EXTENSIONS)}), each with an optional caption file beside it (e.g. 0001.png + "
               "0001.txt with caption_extension = \".txt\"); in folder mode train_data_dir holds folders named "
               "like `10_sks girl`. A metadata file should list existing images. Regularization images alone "
               "do not train.")
    return message + (f"\nSkipped files:\n{_listed(problems)}" if problems else "")


def _listed(problems: list[str]) -> str:
    more = len(problems) - SHOWN_PROBLEMS
    return "\n".join([f"  {p}" for p in problems[:SHOWN_PROBLEMS]] + ([f"  ... and {more} more"] if more > 0 else []))
