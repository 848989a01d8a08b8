"""The teachers' pictures in a merge by training: a stream that adds them to every optimizer step in the teachers'
current shares, and a callback that, before the first epoch and after each, measures where the student's behaviour
lies among the teachers' (`merge_coordinates`) and moves the shares toward the weights (`auto`). At each epoch's
first step every pool is grown (the teacher draws more) so that the epoch trains on no picture more than
`max_reuse` times; a step that still finds too few grows its pool again.

Each step takes, per teacher, the pictures of its pool used least so far (ties in an order seeded by the run's seed,
the step and the teacher), so fresh pictures go first and reuse is spread evenly. The shares, the credits, every
picture's use count and the pools' sizes are the resumable state: a resumed run draws the same pictures, and a pool
that grew after the state was saved is read only up to the size it had then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..data.batch import Batch
from ..errors import UserError
from ..plugins import Callback, LoopContext
from ..regularization.pregenerated import RegImage, load_pixels
from ..regularization.wordfreq import caption_form
from ..similarity.behaviour import drift_of, predictions
from ..validation.measurements import DriftMeter

MIN_SHARE = 0.05  # auto never starves a teacher: no share falls below this


@dataclass
class Pool:
    """One teacher's pictures (a gen_reg_images.py --wordfreq folder) and how often each was trained on."""

    images: list[RegImage]
    uses: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.uses += [0] * (len(self.images) - len(self.uses))

    def available(self, max_reuse: int) -> int:
        """Pictures that may still be trained on."""
        return sum(u < max_reuse for u in self.uses)

    def room(self, max_reuse: int) -> int:
        """Uses left before every picture has reached `max_reuse`."""
        return sum(max(max_reuse - u, 0) for u in self.uses)

    def pick(self, count: int, generator: torch.Generator, max_reuse: int) -> list[RegImage]:
        """`count` of the least-used pictures under `max_reuse` (ties in the generator's order); the caller has
        grown the pool so that there are enough."""
        order = torch.randperm(len(self.images), generator=generator)
        uses = torch.tensor(self.uses, dtype=torch.long)[order]
        chosen = order[torch.argsort(uses, stable=True)][:count].tolist()
        if len(chosen) < count or any(self.uses[i] >= max_reuse for i in chosen):
            raise RuntimeError(f"pick({count}) from a pool with {self.available(max_reuse)} pictures left")
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
    nearest them (least squares). A weight merge with weights w predicts Σ w_i t_i to first order (teachers near
    each other), so its coordinates are then about w; what the student does off the teachers' plane (its own
    drift) leaves them alone."""
    last = teachers[-1].double().flatten()
    basis = torch.stack([t.double().flatten() - last for t in teachers[:-1]], dim=1)
    found = torch.linalg.lstsq(basis, (student.double().flatten() - last)[:, None]).solution.flatten().tolist()
    return [*found, 1 - sum(found)]


def next_ratios(ratios: list[float], weights: list[float], coordinates: list[float], gain: float = 1.0
                ) -> list[float]:
    """Shares that move the student's coordinates toward the weights: each share changes by its teacher's weight
    minus coordinate (an integral controller: a teacher the student lies short of gets more pictures). A share
    that would fall below MIN_SHARE is held there, its deficit taken from the others by what they have above it."""
    moved = [r + gain * (w - c) for r, w, c in zip(ratios, weights, coordinates)]  # sums to 1, as each list does
    deficit = sum(MIN_SHARE - m for m in moved if m < MIN_SHARE)
    spare = sum(m - MIN_SHARE for m in moved if m >= MIN_SHARE)
    return [MIN_SHARE if m < MIN_SHARE else m - deficit * (m - MIN_SHARE) / spare for m in moved]


@dataclass
class TeacherMix:
    """Stream "teachers": `share` teacher pictures per own training image, split by `ratios`, in micro-batches of
    `batch_size`."""

    teachers: list[str]  # as given, to refuse a resume with other teachers
    pools: list[Pool]
    weights: list[float]
    ratios: list[float]
    share: float
    max_reuse: int
    per_step: int  # own training images per optimizer step
    batch_size: int
    size: tuple[int, int]  # (width, height)
    seed: int
    grow: Callable[[int, int], list[RegImage]]  # (teacher, pictures wanted) -> the pool's pictures
    meters: list[DriftMeter]  # the teachers' predictions on the probe words
    auto: bool = False  # move the shares toward the weights after each epoch
    name: str = "teachers"
    credits: list[float] = field(default_factory=list)
    pending: bool = True  # grow the pools for the coming epoch at its first step

    def __post_init__(self) -> None:
        self.credits = self.credits or [0.0] * len(self.pools)

    def batches_for_step(self, ctx: LoopContext, step: int) -> list[Batch]:
        if self.pending:  # at the epoch's first step, not at the previous one's end: a run that ends draws nothing
            self.pending = False
            self._grow_for(min(ctx.steps_per_epoch, ctx.max_steps - step))
        counts, self.credits = split_shares(self.ratios, self.credits, self.share * self.per_step)
        picked: list[RegImage] = []
        for teacher, (pool, count) in enumerate(zip(self.pools, counts)):
            if count > pool.available(self.max_reuse):  # the epoch's estimate fell short
                self._grow(teacher, len(pool.images) + count - pool.available(self.max_reuse))
            picked += pool.pick(count, torch.Generator().manual_seed(hash_seed(self.seed, step, teacher)),
                                self.max_reuse)
        return [Batch(captions=[caption_form(i.word) for i in part], pixels=load_pixels([i.path for i in part],
                                                                                          self.size),
                      loss_weights=torch.ones(len(part)), stream=self.name,
                      keys=[f"teacher:{i.path.parent.name}/{i.path.name}" for i in part])
                for part in (picked[k:k + self.batch_size] for k in range(0, len(picked), self.batch_size))]

    def steer(self, ctx: LoopContext) -> None:
        """After an epoch (and before the first): where the student lies among the teachers, the shares moved
        toward the weights (auto), and the coming epoch's pool growth asked for."""
        inputs, clip_skip = self.meters[0].inputs, self.meters[0].clip_skip
        with ctx.sampling_model() as model:
            student = predictions(model, inputs, clip_skip)
        distances = [drift_of(inputs, meter.reference, student).mean for meter in self.meters]
        coordinates = merge_coordinates(student, [meter.reference for meter in self.meters])
        more = ctx.global_step < ctx.max_steps
        if self.auto and more and ctx.global_step > 0:
            self.ratios = next_ratios(self.ratios, self.weights, coordinates)
        self.pending = more
        record = {"after_epoch": ctx.epoch, "step": ctx.global_step, "distances": distances,
                  "coordinates": coordinates, "ratios": list(self.ratios),
                  "pool_sizes": [len(p.images) for p in self.pools]}
        scalars = {**{f"share_{i}": r for i, r in enumerate(self.ratios)},
                   **{f"distance_{i}": d for i, d in enumerate(distances)},
                   **{f"coordinate_{i}": c for i, c in enumerate(coordinates)}}
        ctx.log_event("merge", scalars=scalars, **record)
        ctx.log_event("note", message=f"merge, after epoch {ctx.epoch}: the student lies at "
                      + ", ".join(f"{c:.2f}" for c in coordinates) + " among the teachers, at distance "
                      + ", ".join(f"{d:.4f}" for d in distances) + "; teacher shares "
                      + ", ".join(f"{r:.2f}" for r in self.ratios))

    def _grow_for(self, steps: int) -> None:
        """Enough pictures for `steps` more steps (and one step's rounding) in each pool, none past max_reuse."""
        for teacher, pool in enumerate(self.pools):
            need = math.ceil(self.share * self.per_step * steps * self.ratios[teacher]) + 1
            if need > pool.room(self.max_reuse):
                self._grow(teacher, len(pool.images) + math.ceil((need - pool.room(self.max_reuse)) / self.max_reuse))

    def _grow(self, teacher: int, count: int) -> None:
        pool = self.pools[teacher]
        pool.images = self.grow(teacher, count)[:count]
        pool.__post_init__()

    def state_dict(self) -> dict[str, Any]:
        return {"teachers": self.teachers, "weights": self.weights, "ratios": self.ratios, "credits": self.credits,
                "uses": [p.uses for p in self.pools], "pending": self.pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if (state["teachers"], state["weights"]) != (self.teachers, self.weights):
            raise UserError(f"the saved state merges {state['teachers']} with weights {state['weights']}, not "
                            f"{self.teachers} with {self.weights}: give the same teachers and weights, or start in "
                            f"another output_dir")
        self.ratios, self.credits, self.pending = list(state["ratios"]), list(state["credits"]), state["pending"]
        for teacher, (pool, uses) in enumerate(zip(self.pools, state["uses"])):
            if len(pool.images) < len(uses):
                pool.images = self.grow(teacher, len(uses))
            pool.images, pool.uses = pool.images[:len(uses)], list(uses)


@dataclass
class TeacherEpochs(Callback):
    """Calls `TeacherMix.steer` before the first epoch of a fresh run and after every epoch."""

    mix: TeacherMix

    def on_train_start(self, ctx: LoopContext) -> None:
        if ctx.global_step == 0:
            self.mix.steer(ctx)

    def on_epoch_end(self, ctx: LoopContext) -> None:
        self.mix.steer(ctx)


def hash_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (the order of ties in a pick)."""
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part) % (2**63 - 1)
    return value
