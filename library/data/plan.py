"""Epoch plans: which samples form each batch, in which order, with which seeds; computed, never stored.

kohya shuffles each bucket's samples and the order of all batches every epoch; so do we, from a Random
seeded by (seed, epoch) alone. A plan is therefore a pure function of its arguments: a resumed run asks
for the same epoch's plans and skips the first k without loading an image, and DataLoader workers only
turn plans into batches. Sample seeds are drawn before the batches are shared out among ranks, so every
sample sees the same augmentation whatever the number of processes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .buckets import Size


@dataclass(frozen=True)
class BatchPlan:
    """One micro-batch: `samples` are (item index, sample seed); `step` is the optimizer steps done before
    it and `max_steps` the run's total, both for token warmup."""

    dataset: int
    bucket: Size
    samples: tuple[tuple[int, int], ...]
    epoch: int
    step: int
    max_steps: int


@dataclass(frozen=True)
class BucketGroup:
    """The samples of one bucket of one dataset: item indices, each repeated `repeats` times."""

    dataset: int
    bucket: Size
    members: tuple[int, ...]
    batch_size: int

    @property
    def batches(self) -> int:
        return math.ceil(len(self.members) / self.batch_size)


@dataclass(frozen=True)
class TrainingLength:
    """How long training runs, in optimizer steps: the one count of steps per epoch and in all (token warmup and
    the trainer both use it; gradient accumulation turns batches into steps, and a short last group still steps)."""

    gradient_accumulation_steps: int = 1
    max_train_steps: int = 1600
    max_train_epochs: int | None = None

    def steps_per_epoch(self, batches: int) -> int:
        return math.ceil(batches / self.gradient_accumulation_steps)

    def max_steps(self, batches: int) -> int:
        if self.max_train_epochs is None:
            return self.max_train_steps
        return self.max_train_epochs * self.steps_per_epoch(batches)


def batches_per_epoch(groups: list[BucketGroup], world_size: int = 1) -> int:
    """kohya's count: per dataset, the sum over buckets of ceil(samples / batch size); split across ranks."""
    return math.ceil(sum(group.batches for group in groups) / world_size)


def epoch_plan(groups: list[BucketGroup], length: TrainingLength, epoch: int, seed: int, rank: int = 0,
               world_size: int = 1) -> list[BatchPlan]:
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    rng = random.Random(f"epoch:{seed}:{epoch}")
    batches = []
    for group in groups:
        members = list(group.members)
        rng.shuffle(members)
        for start in range(0, len(members), group.batch_size):
            batches.append((group, members[start:start + group.batch_size]))
    rng.shuffle(batches)
    seeded = [(group, tuple((index, rng.getrandbits(63)) for index in members)) for group, members in batches]
    share = shard(seeded, rank, world_size)
    per_rank = len(share)
    max_steps = length.max_steps(per_rank)
    first = epoch * length.steps_per_epoch(per_rank)
    return [BatchPlan(group.dataset, group.bucket, samples, epoch,
                      first + position // length.gradient_accumulation_steps, max_steps)
            for position, (group, samples) in enumerate(share)]


def shard(batches: list, rank: int, world_size: int) -> list:
    """DistributedSampler's split: pad to a multiple of `world_size` by repeating from the start, then
    every world_size-th batch from `rank`; equal lengths, and together they cover the epoch."""
    if not batches:
        return []
    total = math.ceil(len(batches) / world_size) * world_size
    padded = (batches * math.ceil(total / len(batches)))[:total]
    return padded[rank::world_size]
