"""The teachers' pictures in a merge by training: a stream that adds them to every optimizer step in the teachers'
current shares, and a callback that, before the first epoch and after each, measures where the student's behaviour
lies among the teachers' (`merge_coordinates`), moves the shares toward the weights (`auto`) and grows each
teacher's pool so the coming epoch uses no picture more than `max_reuse` times.

Each step takes, per teacher, the pictures of its pool used least so far (ties in an order seeded by the run's seed,
the step and the teacher), so fresh pictures go first and reuse is spread evenly. The shares, the credits, every
picture's use count and the pools' sizes are the resumable state: a resumed run draws the same pictures, and a pool
that grew after the state was saved is read only up to the size it had then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data.batch import Batch
from ..plugins import Callback, LoopContext
from ..regularization.pregenerated import RegImage, load_pixels
from ..regularization.wordfreq import caption_form
from ..similarity.behaviour import drift_of, predictions
from ..validation.measurements import DriftMeter

MIN_SHARE = 0.05  # auto never starves a teacher: its share stays in [MIN_SHARE, 1 - MIN_SHARE] (two teachers)


@dataclass
class Pool:
    """One teacher's pictures (a gen_reg_images.py --wordfreq folder) and how often each was trained on."""

    teacher: Path
    folder: Path
    images: list[RegImage]
    uses: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.uses += [0] * (len(self.images) - len(self.uses))

    def room(self, max_reuse: int) -> int:
        """Pictures still allowed before one would pass `max_reuse`."""
        return max_reuse * len(self.images) - sum(self.uses)

    def pick(self, count: int, generator: torch.Generator) -> list[RegImage]:
        """The `count` least-used pictures; ties in the generator's order."""
        order = torch.randperm(len(self.images), generator=generator)
        uses = torch.tensor(self.uses, dtype=torch.long)[order]
        chosen = order[torch.argsort(uses, stable=True)][:count].tolist()
        for index in chosen:
            self.uses[index] += 1
        return [self.images[i] for i in chosen]


def split_shares(ratios: list[float], credits: list[float], images: float) -> tuple[list[int], list[float]]:
    """Pictures per teacher this step: `images` × each share, fractions carried on in `credits`."""
    counts, carried = [], []
    for ratio, credit in zip(ratios, credits):
        credit += images * ratio
        counts.append(math.floor(credit + 1e-9))
        carried.append(credit - counts[-1])
    return counts, carried


def merge_coordinates(student: torch.Tensor, teachers: Sequence[torch.Tensor]) -> list[float]:
    """Where the student's predictions lie among the teachers': the weights c (summing to 1) whose mix Σ c_i t_i is
    nearest them (least squares). A weight merge with weights w predicts Σ w_i t_i to first order, so its
    coordinates are about w; what the student does off the teachers' plane (its own drift) leaves them alone."""
    last = teachers[-1].double().flatten()
    basis = torch.stack([t.double().flatten() - last for t in teachers[:-1]], dim=1)
    found = torch.linalg.lstsq(basis, (student.double().flatten() - last)[:, None]).solution.flatten().tolist()
    return [*found, 1 - sum(found)]


def next_ratios(ratios: list[float], weights: list[float], coordinates: list[float], gain: float = 1.0
                ) -> list[float]:
    """Shares that move the student's coordinates toward the weights: each share changes by its teacher's weight
    minus coordinate (an integral controller: a teacher the student lies short of gets more pictures), and stays
    within [MIN_SHARE, 1 - MIN_SHARE × (teachers - 1)]."""
    moved = [r + gain * (w - c) for r, w, c in zip(ratios, weights, coordinates)]
    low, high = MIN_SHARE, 1 - MIN_SHARE * (len(ratios) - 1)
    clamped = [min(max(m, low), high) for m in moved]
    return [c / sum(clamped) for c in clamped]


@dataclass
class TeacherMix:
    """Stream "teachers": `share` teacher pictures per own training image, split by `ratios`."""

    pools: list[Pool]
    weights: list[float]
    ratios: list[float]
    share: float
    max_reuse: int
    per_step: int  # own training images per optimizer step
    size: tuple[int, int]  # (width, height)
    seed: int
    grow: Callable[[int, int], list[RegImage]]  # (teacher, pictures wanted) -> the pool's pictures
    meters: list[DriftMeter]  # the teachers' predictions on the probe words: the student's distance to each
    auto: bool = False  # move the shares toward the weights after each epoch
    name: str = "teachers"
    credits: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.credits = self.credits or [0.0] * len(self.pools)

    def batches_for_step(self, ctx: LoopContext, step: int) -> list[Batch]:
        counts, self.credits = split_shares(self.ratios, self.credits, self.share * self.per_step)
        picked: list[RegImage] = []
        for teacher, (pool, count) in enumerate(zip(self.pools, counts)):
            if count > pool.room(self.max_reuse):  # the epoch's estimate fell short: grow now, as before an epoch
                self._grow(teacher, len(pool.images) + math.ceil(count / self.max_reuse))
            picked += pool.pick(count, torch.Generator().manual_seed(hash_seed(self.seed, step, teacher)))
        if not picked:
            return []
        return [Batch(captions=[caption_form(i.word) for i in picked], pixels=load_pixels([i.path for i in picked],
                                                                                            self.size),
                      loss_weights=torch.ones(len(picked)), keys=[f"teacher:{i.path.parent.name}/{i.path.name}"
                                                                   for i in picked], stream=self.name)]

    def prepare_epoch(self, ctx: LoopContext) -> None:
        """Before an epoch: the student's distance to each teacher, the shares moved (auto), the pools grown."""
        record: dict[str, Any] = {"epoch": ctx.epoch + 1, "step": ctx.global_step}
        inputs, clip_skip = self.meters[0].inputs, self.meters[0].clip_skip
        with ctx.sampling_model() as model:
            student = predictions(model, inputs, clip_skip)
        distances = [drift_of(inputs, meter.reference, student).mean for meter in self.meters]
        coordinates = merge_coordinates(student, [meter.reference for meter in self.meters])
        record.update(distances=distances, coordinates=coordinates)
        if self.auto and ctx.global_step > 0:
            self.ratios = next_ratios(self.ratios, self.weights, coordinates)
        per_epoch = self.share * self.per_step * ctx.steps_per_epoch
        for teacher, pool in enumerate(self.pools if ctx.global_step < ctx.max_steps else []):  # none after the last
            need = math.ceil(per_epoch * self.ratios[teacher]) + 1
            if need > pool.room(self.max_reuse):
                self._grow(teacher, len(pool.images) + math.ceil((need - pool.room(self.max_reuse)) / self.max_reuse))
        record.update(ratios=list(self.ratios), pool_sizes=[len(p.images) for p in self.pools])
        self.history.append(record)
        scalars = {**{f"share_{i}": r for i, r in enumerate(self.ratios)},
                   **{f"distance_{i}": d for i, d in enumerate(distances)},
                   **{f"coordinate_{i}": c for i, c in enumerate(coordinates)}}
        ctx.log_event("merge", scalars=scalars, **record)
        ctx.log_event("note", message=f"merge, epoch {record['epoch']}: teacher shares "
                      + ", ".join(f"{r:.2f}" for r in self.ratios) + "; the student lies at "
                      + ", ".join(f"{c:.2f}" for c in coordinates) + " among the teachers, at distance "
                      + ", ".join(f"{d:.4f}" for d in distances))

    def _grow(self, teacher: int, count: int) -> None:
        pool = self.pools[teacher]
        pool.images = self.grow(teacher, count)[:count]
        pool.__post_init__()

    def state_dict(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "credits": self.credits, "history": self.history,
                "uses": [p.uses for p in self.pools]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.ratios, self.credits = list(state["ratios"]), list(state["credits"])
        self.history = list(state["history"])
        for pool, uses in zip(self.pools, state["uses"]):
            if len(pool.images) < len(uses):
                pool.images = self.grow(self.pools.index(pool), len(uses))
            pool.images, pool.uses = pool.images[:len(uses)], list(uses)


@dataclass
class TeacherEpochs(Callback):
    """Calls `TeacherMix.prepare_epoch` before the first epoch of a fresh run and after every epoch."""

    mix: TeacherMix

    def on_train_start(self, ctx: LoopContext) -> None:
        if ctx.global_step == 0:
            self.mix.prepare_epoch(ctx)

    def on_epoch_end(self, ctx: LoopContext) -> None:
        self.mix.prepare_epoch(ctx)


def hash_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (the order of ties in a pick)."""
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part) % (2**63 - 1)
    return value
