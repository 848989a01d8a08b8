"""The self-generated word-frequency regularization stream: the Certain method against language drift.

Every due step the *current* model (the weights being trained, text encoder included) generates a few images from
single-word prompts, the words drawn in proportion to their frequency; their latents join that optimizer step as an
extra micro-batch captioned with the word, and are then dropped: each generated sample is trained on exactly once.
The loop knows none of this: it asks every stream for its batches before a step (`library.plugins`).

Determinism: the words come from one seeded `WordSampler` that every process advances identically (each draws the
words of all processes and keeps its own slice), image j of the run has seed `seed + j`, and the noise of each
image comes from its seed alone (`library.sampling.noise`). The state is the sampler's, the images made and the
fractional image credit, so a resumed run draws the same words with the same seeds.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data.batch import Batch
from ..errors import UserError
from ..plugins import LoopContext
from ..sampling.request import GenerationRequest
from .sampler import WordSampler
from .wordfreq import caption_form


@dataclass(frozen=True)
class RegMix:
    """How many regularization images join which steps.

    `ratio`: images per training image (0.25 is 1:4), accumulated across steps so fractions add up exactly; or a
    fixed `batch` of images. Either way only every `every_n_steps`-th step from `warmup_steps` on gets them."""

    ratio: float = 0.25
    batch: int | None = None
    every_n_steps: int = 1
    warmup_steps: int = 0

    def due(self, step: int) -> bool:
        """`step`: optimizer steps already done (0 for the first)."""
        return step >= self.warmup_steps and (step - self.warmup_steps) % self.every_n_steps == 0

    def images(self, step: int, train_images: int, credit: float) -> tuple[int, float]:
        """(images for this step, credit carried on), for one process whose steps hold `train_images` images.

        `train_images` is the nominal batch x accumulation, the same on every process (so they stay in step):
        a short last batch of a bucket or epoch gets the full batch's share."""
        if step < self.warmup_steps:
            return 0, credit
        if self.batch is not None:
            return (self.batch if self.due(step) else 0), 0.0
        credit += self.ratio * train_images
        if not self.due(step):
            return 0, credit
        count = math.floor(credit + 1e-9)  # 0.25 * 4 adds up to 1 without a float shortfall
        return count, credit - count


@dataclass(frozen=True)
class GenerationSettings:
    """The A1111 settings the regularization images are made with (fast defaults: 20 steps of Euler a)."""

    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    sampler: str = "euler_a"
    negative_prompt: str = ""
    clip_skip: int | None = None

    def request(self, word: str, seed: int) -> GenerationRequest:
        return GenerationRequest(prompt=word, negative_prompt=self.negative_prompt, width=self.width,
                                 height=self.height, steps=self.steps, cfg_scale=self.cfg_scale, seed=seed,
                                 sampler=self.sampler, clip_skip=self.clip_skip)


MODE = "self_wordfreq"


def check_mode(state: dict[str, Any], mode: str) -> bool:
    """Whether there is a saved stream state to restore; one of another reg_mode is refused, not misread."""
    if not state:
        return False
    if state.get("mode") != mode:
        raise UserError(f"the resumed state's regularization stream was reg_mode = \"{state.get('mode')}\", this "
                        f"run's is \"{mode}\"; resume with the same mode (or start the run afresh)")
    return True


@dataclass
class SelfGeneratedStream:
    """Stream "reg": images the current model generates from frequency-drawn words, each trained on once."""

    sampler: WordSampler
    mix: RegMix
    generation: GenerationSettings
    seed: int  # image j of the run (over all processes) has seed `seed + j`
    train_images_per_step: int  # per process: train_batch_size x gradient_accumulation_steps
    loss_weight: float = 1.0
    save_images_to: Path | None = None
    name: str = "reg"
    credit: float = 0.0
    counts: Counter = field(default_factory=Counter)  # words drawn so far, over all processes
    generation_seconds: float = 0.0  # this process
    generated_here: int = 0  # images this process generated, for its images per second

    @property
    def images_made(self) -> int:
        """Images over all processes so far: one per word drawn."""
        return self.sampler.drawn

    def batches_for_step(self, ctx: LoopContext, step: int) -> list[Batch]:
        count, self.credit = self.mix.images(step, self.train_images_per_step, self.credit)
        if count == 0:
            return []
        rank, world = ctx.rank, ctx.world_size
        seeds = [self.seed + self.images_made + j for j in range(count * world)]
        words = self.sampler.draw(count * world)
        self.counts.update(words)
        mine = slice(rank * count, (rank + 1) * count)
        start = time.perf_counter()
        latents = self._generate(ctx, words[mine], seeds[mine])
        seconds = time.perf_counter() - start
        self.generation_seconds += seconds
        self.generated_here += count
        ctx.log_event("reg_images", step=step + 1, words=words, seeds=seeds, seconds=round(seconds, 4),
                      images_per_second=round(count / max(seconds, 1e-9), 4))
        return [Batch(captions=[caption_form(w) for w in words[mine]], latents=latents,
                      loss_weights=torch.full((count,), float(self.loss_weight)),
                      keys=[f"reg:{seed}:{w}" for w, seed in zip(words[mine], seeds[mine])], stream=self.name)]

    def _generate(self, ctx: LoopContext, words: list[str], seeds: list[int]) -> torch.Tensor:
        """Latents (times the VAE factor, as training wants them) from the weights being trained, no copy made."""
        from ..sampling.generate import generate
        from ..sampling.infotext import ModelIdentity

        requests = [self.generation.request(w, s) for w, s in zip(words, seeds)]
        identity = ModelIdentity(name=f"training@step{ctx.global_step}")
        with ctx.sampling_model() as model:
            results = generate(model, requests, device=ctx.device, batch_size=len(requests), output="latents",
                               dtype=ctx.dtype, identity=identity)
        latents = torch.stack([r.latents for r in results])
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)  # so the time measured is the generation's, not the next step's
        if self.save_images_to is not None:
            self._save(model, results, latents)
        return latents

    def _save(self, model, results, latents: torch.Tensor) -> None:
        from ..sampling.decode import decode_latents, to_pil
        from ..sampling.infotext import save_png

        with torch.no_grad():
            images = to_pil(decode_latents(model.vae, latents.to(next(model.vae.parameters()).device)))
        for result, image in zip(results, images):
            name = re.sub(r'[<>:"/\\|?*\s]+', "_", f"{result.seed}-{caption_form(result.request.prompt)}")[:80]
            save_png(image, self.save_images_to / f"{name}.png", result.infotext)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": MODE, "sampler": self.sampler.state_dict(), "credit": self.credit,
                "images_made": self.images_made, "counts": dict(self.counts),  # images_made: for readers
                "generation_seconds": self.generation_seconds, "generated_here": self.generated_here}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not check_mode(state, MODE):
            return
        self.sampler.load_state_dict(state["sampler"])
        self.credit = float(state["credit"])
        self.counts = Counter(state["counts"])
        self.generation_seconds = float(state["generation_seconds"])
        self.generated_here = int(state["generated_here"])


def generation_settings(reg, resolution: tuple[int, int], clip_skip: int | None) -> GenerationSettings:
    """From the `[regularization]` options; the size defaults to the training resolution (width, height)."""
    width, height = reg.reg_resolution or resolution
    return replace(GenerationSettings(), width=width, height=height, steps=reg.reg_steps,
                   cfg_scale=reg.reg_cfg_scale, sampler=reg.reg_sampler, negative_prompt=reg.reg_negative_prompt,
                   clip_skip=clip_skip)
