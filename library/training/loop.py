"""The training loop: batches in, optimizer steps out; everything else attaches as a stream or callback.

Determinism is by construction: the data order and every per-sample choice come from pure epoch plans
(`library.data`), and all training randomness (timesteps, noise, VAE sampling) is drawn from one generator
per rank whose state is saved with the run. A resumed run therefore replays exactly.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch

from ..data.batch import Batch
from ..data.loader import iterate_batches
from ..plugins import Callback, Stream, StepResult
from ..text.conditioning import chunk_tokens, encode_chunks
from .losses import LossOptions, diffusion_loss
from .model_setup import encode_latents, weight_dtype
from .noise import NoiseOptions, add_noise
from .optimizers import is_schedule_free, load_optimizer_state
from .state import LoadedState, Progress, restore_rng, rng_state, save_state

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.optim.lr_scheduler import LRScheduler

    from ..data.dataset import TrainingData
    from ..models.sd_model import SDModel


class StopTraining(Exception):
    """Raised at a step boundary after Ctrl-C: the state is consistent and callbacks may save it."""


@dataclass(frozen=True)
class TrainSettings:
    """The resolved numbers of a run; `seed` is the saved one when resuming, so both halves draw alike."""

    seed: int
    max_steps: int
    steps_per_epoch: int = 1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    text_encoder_until: int | None = None  # train the text encoder while global_step < this (None: frozen)
    max_chunks: int = 1  # max_token_length / 75
    clip_skip: int | None = None
    num_workers: int = 0
    persistent_workers: bool = False
    fingerprint: str = ""


@dataclass
class Trainer:
    accelerator: Accelerator
    model: SDModel
    data: TrainingData
    optimizer: torch.optim.Optimizer
    lr_scheduler: LRScheduler
    settings: TrainSettings
    alphas_cumprod: torch.Tensor
    loss_options: LossOptions = LossOptions()
    noise_options: NoiseOptions = NoiseOptions()
    callbacks: Sequence[Callback] = ()
    streams: Sequence[Stream] = ()
    progress: Progress = field(default_factory=Progress)
    stop: threading.Event = field(default_factory=threading.Event)  # set by the Ctrl-C handler
    finish_reason: str | None = None  # set by a plug-in (e.g. stop_on_overfit): end cleanly after this step
    generator: torch.Generator = field(init=False)
    context: TrainerContext = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.settings.seed + self.accelerator.process_index)
        self.context = TrainerContext(self)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def text_encoder_training(self) -> bool:
        until = self.settings.text_encoder_until
        return until is not None and self.progress.global_step < until

    @contextlib.contextmanager
    def sampling_model(self) -> Iterator[SDModel]:
        """The model with plain (not DDP-wrapped) modules, in a schedule-free optimizer's eval weights."""
        switch = is_schedule_free(self.optimizer)
        if switch:
            self.optimizer.eval()
        try:
            yield self._plain_model()
        finally:
            if switch:
                self.optimizer.train()

    def _plain_model(self) -> SDModel:
        return replace(self.model, unet=self.accelerator.unwrap_model(self.model.unet, keep_torch_compile=False))

    def log_event(self, name: str, **fields: Any) -> None:
        for cb in self.callbacks:
            cb.on_event(self.context, name, fields)

    # ---- the loop ---------------------------------------------------------------------------------------
    def fit(self) -> bool:
        """Train until max_steps; returns False when interrupted (Ctrl-C), after callbacks saved a state."""
        self._set_text_encoder_mode()
        for cb in self.callbacks:
            cb.on_train_start(self.context)
        interrupted = False
        try:
            while self.progress.global_step < self.settings.max_steps and not self._finish_agreed():
                self._run_epoch()
        except StopTraining:
            interrupted = True
        for cb in reversed(self.callbacks):  # teardown in reverse: savers still report to open progress streams
            cb.on_train_end(self.context, interrupted)
        return not interrupted

    def _run_epoch(self) -> None:
        acc = self.accelerator
        plans = self.data.epoch_plan(self.progress.epoch, self.settings.seed, acc.process_index, acc.num_processes)
        remaining = plans[self.progress.batch_in_epoch:]
        batches = iterate_batches(self.data, remaining, self.settings.num_workers, self.settings.persistent_workers)
        for group in _groups(batches, self.settings.grad_accum):
            if self.progress.global_step >= self.settings.max_steps:
                return
            start = time.perf_counter()  # the step's time includes making its streams' batches (ETA, it/s)
            extra = [b for stream in self.streams for b in stream.batches_for_step(self.context, self.progress.global_step)]
            result = self.step(group + extra, started=start)
            self.progress.batch_in_epoch += len(group)
            for cb in self.callbacks:
                cb.on_step_end(self.context, result)
            if self._stop_agreed():
                raise StopTraining
            if self._finish_agreed():
                return
        if self.progress.batch_in_epoch >= len(plans):
            self.progress.epoch += 1
            self.progress.batch_in_epoch = 0
            for cb in self.callbacks:
                cb.on_epoch_end(self.context)

    def _stop_agreed(self) -> bool:
        """Every process stops after the same step, or DDP's collectives would wait for each other forever."""
        if self.accelerator.num_processes == 1:
            return self.stop.is_set()
        flag = torch.tensor([float(self.stop.is_set())], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _finish_agreed(self) -> bool:
        """A plug-in may end the run (`finish`); every process ends after the same step, wherever it was asked."""
        if self.accelerator.num_processes == 1:
            return self.finish_reason is not None
        flag = torch.tensor([float(self.finish_reason is not None)], device=self.device)
        if self.accelerator.reduce(flag, reduction="sum").item() > 0:
            self.finish_reason = self.finish_reason or "ended by the main process"
        return self.finish_reason is not None

    def finish(self, reason: str) -> None:
        self.finish_reason = reason
        self.log_event("finish", step=self.progress.global_step, reason=reason)

    def _set_text_encoder_mode(self) -> None:
        """At the start and when text_encoder_until is reached: the text encoder trains, or is frozen in eval mode."""
        training = self.text_encoder_training
        self.model.text_encoder.requires_grad_(training)
        self.model.text_encoder.train(training)

    def step(self, batches: list[Batch], started: float | None = None) -> StepResult:
        """One optimizer step over micro-batches (gradient accumulation and extra streams alike); `started`: when
        the step's work began (before its streams' batches were made), for its time."""
        start = time.perf_counter() if started is None else started
        acc, unet, te = self.accelerator, self.model.unet, self.model.text_encoder
        train_te = self.text_encoder_training
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
        if self.progress.global_step == self.settings.text_encoder_until:
            self._set_text_encoder_mode()
        flat = {name: torch.cat(parts) for name, parts in losses.items()}
        everything = torch.cat(list(flat.values()))
        return StepResult(step=self.progress.global_step, epoch=self.progress.epoch + 1,
                          loss=float(everything.mean()), stream_losses={k: float(v.mean()) for k, v in flat.items()},
                          lr=float(self.lr_scheduler.get_last_lr()[0]), samples=total,
                          seconds=time.perf_counter() - start)

    @torch.no_grad()
    def evaluation_loss(self, model: SDModel, batch: Batch, generator: torch.Generator, timestep: int) -> torch.Tensor:
        """Per-sample losses of `batch` under `model` (from `sampling_model`) at one fixed timestep, noise from
        `generator`, no gradients."""
        with self.accelerator.autocast():
            return self.batch_loss(batch, generator, model=model, timestep=timestep)[1].float().cpu()

    def batch_loss(self, batch: Batch, generator: torch.Generator, train_te: bool = False, *,
                   model: SDModel | None = None, timestep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, per-sample losses) of one batch with noise and timesteps drawn from `generator`.

        Training passes the run's generator; validation passes its own fixed one, a fixed `timestep` and the plain
        `model`, so measuring never changes what training draws next."""
        model, dev = model or self.model, self.device
        # Every host-to-device copy happens before the U-Net is queued: a copy issued after it would make the
        # CPU wait for the forward pass, so the backward's kernels could not be queued while it runs.
        ac = self._alphas_on(dev)
        weights = batch.loss_weights.to(dev)
        latents = self.latents_of(batch, generator)
        tokens = chunk_tokens(model.tokenizer, batch.captions, self.settings.max_chunks, model.family).to(dev)
        noise, timesteps, model_noise = self.noise_options.draw(latents, generator)
        if timestep is not None:
            timesteps = torch.full_like(timesteps, timestep)
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

    # ---- the resumable state ---------------------------------------------------------------------------
    def write_state(self, folder: Path) -> None:
        """Save everything a resume needs (`library.training.state`); called on every process."""
        from accelerate.utils import gather_object

        rng = gather_object([rng_state(self.generator)])
        if self.accelerator.is_main_process:
            modules = {"unet": self._plain_model().unet}  # the training weights (schedule-free: not the eval ones)
            if self.settings.text_encoder_until is not None:
                modules["text_encoder"] = self.model.text_encoder
            progress = replace(self.progress, extra={
                "streams": {s.name: s.state_dict() for s in self.streams},
                "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks}})
            save_state(folder, progress=progress, modules=modules, optimizer=self.optimizer,
                       lr_scheduler=self.lr_scheduler, scaler=getattr(self.accelerator, "scaler", None),
                       rng_per_rank=rng, fingerprint=self.settings.fingerprint, seed=self.settings.seed)
        self.accelerator.wait_for_everyone()

    def restore(self, state: LoadedState) -> None:
        """Continue from a saved state: weights, optimizer, schedule, scaler, this rank's RNG, plug-ins, position."""
        self._plain_model().unet.load_state_dict(state.weights["unet"])  # copies, keeping each dtype
        if "text_encoder" in state.weights:
            self.model.text_encoder.load_state_dict(state.weights["text_encoder"])
        load_optimizer_state(self.optimizer, state.optimizer["optimizer"])
        self.lr_scheduler.load_state_dict(state.optimizer["lr_scheduler"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and state.optimizer.get("scaler"):
            scaler.load_state_dict(state.optimizer["scaler"])
        restore_rng(self.generator, state.rng_per_rank[self.accelerator.process_index])
        extra = state.progress.extra
        for stream in self.streams:
            stream.load_state_dict(extra.get("streams", {}).get(stream.name, {}))
        for cb in self.callbacks:
            cb.load_state_dict(extra.get("callbacks", {}).get(type(cb).__name__, {}))
        self.progress = Progress(state.progress.global_step, state.progress.epoch, state.progress.batch_in_epoch)


class TrainerContext:
    """The `LoopContext` plug-ins get: a narrow view of the trainer (`library.plugins`)."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer
        acc = trainer.accelerator
        self.rank, self.world_size, self.device = acc.process_index, acc.num_processes, acc.device
        self.dtype = weight_dtype(acc.mixed_precision)
        self.max_steps, self.steps_per_epoch = trainer.settings.max_steps, trainer.settings.steps_per_epoch
        self.log_event, self.sampling_model, self.write_state = (trainer.log_event, trainer.sampling_model,
                                                                 trainer.write_state)
        self.evaluation_loss, self.finish = trainer.evaluation_loss, trainer.finish
        self.wait_for_everyone = acc.wait_for_everyone

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def global_step(self) -> int:
        return self._trainer.progress.global_step

    @property
    def epoch(self) -> int:
        return self._trainer.progress.epoch


def _groups(batches: Iterator[Batch], size: int) -> Iterator[list[Batch]]:
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
