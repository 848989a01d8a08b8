"""The training loop: batches in, optimizer steps out; everything else attaches as a stream or callback.

Determinism is by construction: the data order and every per-sample choice come from pure epoch plans
(`library.data`), and all training randomness (timesteps, noise, VAE sampling) is drawn from one generator
per rank whose state is saved with the run. A resumed run therefore replays exactly.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch

from ..data.batch import Batch
from .callbacks import Callback, Stream, StepResult
from .state import Progress


def steps_per_epoch(batches: int, grad_accum: int) -> int:
    """Optimizer steps per epoch: a last, shorter accumulation group still makes a step (as kohya)."""
    return -(-batches // grad_accum)


class StopTraining(Exception):
    """Raised at a step boundary after Ctrl-C: the state is consistent and callbacks may save it."""


@dataclass
class TrainSettings:
    seed: int
    max_steps: int
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    text_encoder_until: int | None = None  # train the text encoder while global_step < this (None: frozen)
    max_chunks: int = 1  # max_token_length / 75
    clip_skip: int | None = None
    num_workers: int = 0
    persistent_workers: bool = False
    fingerprint: str = ""
    optimizer_description: str = ""  # kohya's ss_optimizer, `module.Class(args)`


@dataclass
class Trainer:
    accelerator: Any
    model: Any  # library.models.sd_model.SDModel
    data: Any  # library.data TrainingData
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    settings: TrainSettings
    alphas_cumprod: torch.Tensor
    loss_options: Any  # library.training.losses.LossOptions
    noise_options: dict[str, Any]
    callbacks: list[Callback] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    generator: torch.Generator | None = None
    stop_requested: bool = False

    def __post_init__(self) -> None:
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(self.settings.seed + self.accelerator.process_index)

    # ---- properties callbacks use -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.data.batches_per_epoch(self.accelerator.num_processes), self.settings.grad_accum)

    @property
    def text_encoder_training(self) -> bool:
        until = self.settings.text_encoder_until
        return until is not None and self.progress.global_step < until

    def model_for_sampling(self):
        """The SDModel with plain (not DDP-wrapped) modules: for generation, saving and state."""
        return replace(self.model, unet=self.accelerator.unwrap_model(self.model.unet, keep_torch_compile=False))

    @contextlib.contextmanager
    def eval_weights(self):
        """Schedule-free optimizers keep the weights to use in their eval mode: sampling and saving see those."""
        switch = hasattr(self.optimizer, "eval") and hasattr(self.optimizer, "train")
        if switch:
            self.optimizer.eval()
        try:
            yield
        finally:
            if switch:
                self.optimizer.train()

    def log_event(self, name: str, **fields: Any) -> None:
        for cb in self.callbacks:
            cb.on_event(self, name, fields)

    # ---- the loop ---------------------------------------------------------------------------------------
    def fit(self) -> bool:
        """Train until max_steps; returns False when interrupted (Ctrl-C), after callbacks saved a state."""
        for cb in self.callbacks:
            cb.on_train_start(self)
        interrupted = False
        try:
            while self.progress.global_step < self.settings.max_steps:
                self._run_epoch()
        except StopTraining:
            interrupted = True
        for cb in reversed(self.callbacks):  # teardown in reverse: savers still report to open progress streams
            cb.on_train_end(self, interrupted)
        return not interrupted

    def _run_epoch(self) -> None:
        from ..data.dataset import iterate_batches

        acc = self.accelerator
        plans = self.data.epoch_plan(self.progress.epoch, self.settings.seed, acc.process_index, acc.num_processes)
        remaining = plans[self.progress.batch_in_epoch:]
        batches = iterate_batches(self.data, remaining, self.settings.num_workers, self.settings.persistent_workers)
        for group in _groups(batches, self.settings.grad_accum):
            if self.progress.global_step >= self.settings.max_steps:
                return
            start = time.perf_counter()
            extra = [b for stream in self.streams for b in stream.batches_for_step(self, self.progress.global_step)]
            result = replace(self.step(group + extra), seconds=time.perf_counter() - start)  # ETA counts streams
            self.progress.batch_in_epoch += len(group)
            for cb in self.callbacks:
                cb.on_step_end(self, result)
            if self._stop_agreed():
                raise StopTraining
        if self.progress.batch_in_epoch >= len(plans):
            self.progress.epoch += 1
            self.progress.batch_in_epoch = 0
            for cb in self.callbacks:
                cb.on_epoch_end(self)

    def _stop_agreed(self) -> bool:
        """Every process stops after the same step, or DDP's collectives would wait for each other forever."""
        if self.accelerator.num_processes == 1:
            return self.stop_requested
        flag = torch.tensor([float(self.stop_requested)], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def step(self, batches: list[Batch]) -> StepResult:
        """One optimizer step over micro-batches (gradient accumulation and extra streams alike)."""
        start = time.perf_counter()
        acc, unet, te = self.accelerator, self.model.unet, self.model.text_encoder
        train_te = self.text_encoder_training
        te.requires_grad_(train_te)
        te.train(train_te)
        total = sum(len(b) for b in batches)
        losses: dict[str, list[torch.Tensor]] = {}
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = acc.no_sync(unet) if not last and acc.num_processes > 1 else contextlib.nullcontext()
            with sync, acc.autocast():
                loss, per_sample = self.batch_loss(batch, self.generator, train_te)
                acc.backward(loss * len(batch) / total)
            losses.setdefault(batch.stream, []).append(per_sample.detach().float())
        if train_te and acc.num_processes > 1:  # the text encoder is not DDP-wrapped: average its gradients here
            for p in te.parameters():
                if p.grad is not None:
                    p.grad = acc.reduce(p.grad, reduction="mean")
        if acc.sync_gradients and self.settings.max_grad_norm > 0:
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            acc.clip_grad_norm_(params, self.settings.max_grad_norm)
        self.optimizer.step()
        if not acc.optimizer_step_was_skipped:  # fp16: GradScaler skipped an overflowing step; so does the schedule
            self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.global_step += 1
        flat = {name: torch.cat(parts) for name, parts in losses.items()}
        everything = torch.cat(list(flat.values()))
        return StepResult(step=self.progress.global_step, epoch=self.progress.epoch + 1,
                          loss=float(everything.mean()), stream_losses={k: float(v.mean()) for k, v in flat.items()},
                          lr=float(self.lr_scheduler.get_last_lr()[0]), samples=total,
                          seconds=time.perf_counter() - start)

    def batch_loss(self, batch: Batch, generator: torch.Generator, train_te: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, per-sample losses) of one batch with noise and timesteps drawn from `generator`.

        Training passes the run's generator; validation passes its own fixed one (under no_grad), so measuring
        never changes what training draws next."""
        from ..text.conditioning import chunk_tokens, encode_chunks
        from .losses import diffusion_loss
        from .timesteps import sample_timesteps
        from .noise import add_noise, perturb_noise, sample_noise

        model, gen, dev = self.model, generator, self.device
        # Every host-to-device copy happens before the U-Net is queued: a copy issued after it would make the
        # CPU wait for the forward pass, so the backward's kernels could not be queued while it runs.
        ac = self._alphas_on(dev)
        weights = batch.loss_weights.to(dev)
        latents = self.latents_of(batch, gen)
        tokens = chunk_tokens(model.tokenizer, batch.captions, self.settings.max_chunks, model.family).to(dev)
        noise = sample_noise(latents, gen, **self.noise_options["noise"])
        timesteps = sample_timesteps(latents.shape[0], gen, **self.noise_options["timesteps"]).to(dev)
        model_noise = perturb_noise(noise, gen, **self.noise_options["perturb"])
        with torch.set_grad_enabled(train_te):
            cond = encode_chunks(model.text_encoder, tokens, self.settings.clip_skip, model.family)
        noisy = add_noise(latents, model_noise, timesteps, ac)
        pred = model.unet(noisy, timesteps, cond).sample
        return diffusion_loss(pred.float(), latents.float(), noise.float(), timesteps, alphas_cumprod=ac,
                              prediction_type=model.prediction_type, options=self.loss_options, sample_weights=weights)

    def _alphas_on(self, device: torch.device) -> torch.Tensor:
        if self.alphas_cumprod.device != device:
            self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self.alphas_cumprod

    def latents_of(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Cached latents as they are; otherwise encode the pixels with the (frozen) VAE, sampling with our generator."""
        if batch.latents is not None:
            return batch.latents.to(self.device)
        return encode_latents(self.model.vae, batch.pixels.to(self.device), generator)


@torch.no_grad()
def encode_latents(vae: torch.nn.Module, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample the VAE posterior with `generator` (CPU draws: the same on any device) and scale as SD expects."""
    dist = vae.encode(pixels.to(next(vae.parameters()).dtype)).latent_dist
    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
    return (dist.mean + dist.std * noise) * vae.config.scaling_factor


def _groups(batches: Iterator[Batch], size: int) -> Iterator[list[Batch]]:
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
