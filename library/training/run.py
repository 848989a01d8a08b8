"""One training run: resolved first (seed, length, options, the state it resumes), then assembled in one go.

`resolve_run` decides everything a run is before anything is built, so no part can capture a value that a later
step would change (a resumed run's seed is the saved one from the start); `assemble` builds the optimizer,
schedules and plug-ins and hands them to the `Trainer` whole. The order matters for users too: the dataset is
scanned (and an empty or broken one reported) and a resume folder read before any model loads, and the config
echo comes first in the log so a pasted log says how the run was set up.
"""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from ..config import LoadedConfig, TrainConfig, dump_args_toml
from ..data.dataset import build_training_data
from ..errors import UserError
from ..plugins import Callback, Stream
from ..regularization.setup import RegularizationPlan, plan_regularization
from ..validation.setup import plan_measurements
from .loop import TrainSettings, Trainer
from .losses import LossOptions
from .model_setup import cache_latents, load_base_model, prepare_model, text_encoder_until
from .noise import NoiseOptions
from .outputs import TrainedModelWriter
from .startup import StartupPhases
from .state import StateInfo, load_state, read_state_info
from .support import unsupported_notes

if TYPE_CHECKING:
    from ..data.dataset import TrainingData
    from ..models.sd_model import SDModel


def run_training(loaded: LoadedConfig, *, streams: Sequence[Stream] = (), callbacks: Sequence[Callback] = ()) -> int:
    """Train as configured; returns the process exit code (0 done, 130 interrupted with a saved state).

    `streams` and `callbacks` are the plug-in points of the workflows built on the trainer (regularization
    streams, validation, drift probes): they join the run's own, and are saved with its state.
    """
    train = loaded.train
    startup = StartupPhases()
    data = scan_data(loaded)
    startup.mark("scanning the data")
    accelerator = make_accelerator(train)
    say = _printer(accelerator, train.logging.console_log_file)
    startup.say = say
    startup.mark("starting accelerate")
    say(config_echo(train, loaded.notes + unsupported_notes(train), accelerator))
    say("\n".join(data.describe()))
    if train.dataset.debug_dataset:
        say("\n".join(debug_batches(data, train)))
        return 0
    plan = resolve_run(train, loaded, data, accelerator, say)
    regularization = plan_regularization(train, data, say, accelerator.is_main_process)
    measuring = plan_measurements(train, loaded.datasets, data, regularization and regularization.word_list, say)
    startup.mark("planning")
    model = load_base_model(train)
    startup.mark("loading the model")
    say("\n".join(model.describe()))
    say(truncation_note(model, data, plan.settings.max_chunks))
    prepare_model(model, train, accelerator, say)
    startup.mark("placing the model")
    if train.dataset.cache_latents or train.dataset.cache_latents_to_disk:
        cache_latents(data, model, train, accelerator)
        if measuring.validation is not None:  # the held-out images too: encoded once, not at every evaluation
            cache_latents(measuring.validation.data, model, train, accelerator)
        startup.mark("caching latents")
    if regularization is not None:
        streams, callbacks = _with_regularization(regularization, loaded, plan.settings, model, streams, callbacks)
    # Before a resumed state replaces the weights: the drift meter and similarity compare against the base.
    callbacks = [*callbacks, measuring.callback(train, model, _first_resolution(loaded, model)), startup]
    trainer = assemble(train, plan, model, data, accelerator, streams, callbacks, say)
    if plan.resume_from is not None:
        trainer.restore(load_state(plan.resume_from))  # read here, and let go once restored
        say(f"resumed from {train.saving.resume} at step {trainer.progress.global_step} "
            f"(epoch {trainer.progress.epoch + 1}).")
    startup.mark("setting up")
    previous = _install_interrupt(trainer.stop, say)
    try:
        finished = trainer.fit()
    except KeyboardInterrupt:  # the second Ctrl-C: mid-step, so no state is written that could be inconsistent
        say("stopped at once; no state was saved. Resume from the last saved state, if any.")
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    say("training finished." if finished else "training interrupted: a resumable state was saved (see above).")
    return 0 if finished else 130


def scan_data(loaded: LoadedConfig) -> TrainingData:
    """The training data, once the config says where it is and where the run's outputs go."""
    if loaded.datasets is None:
        raise UserError("no training data: set train_data_dir (the parent of `10_name` folders), in_json with "
                        "train_data_dir, or dataset_config.")
    if not loaded.train.saving.output_dir:
        raise UserError("output_dir is not set: where should checkpoints, samples and logs go?")
    return build_training_data(loaded.datasets, loaded.train, strict_data=loaded.train.certain.strict_data)


@dataclass(frozen=True)
class RunPlan:
    """What a run is, decided before anything is built: the numbers, the noise and loss options, and the state it
    continues from (whose seed the settings already hold, so every part built from them draws as the first run)."""

    settings: TrainSettings
    noise: NoiseOptions
    loss: LossOptions
    resume_from: StateInfo | None = None


def resolve_run(train: TrainConfig, loaded: LoadedConfig, data: TrainingData, accelerator, say) -> RunPlan:
    """The seed (the saved one when resuming, else the option, else one drawn and told), the run's length in
    steps, and the options; a resume folder is checked here (its tensors are read at restore), so a wrong one is
    reported before any model loads."""
    state = read_state_info(train.saving.resume) if train.saving.resume else None
    fingerprint = _fingerprint(train)
    if state is not None:
        if accelerator.num_processes > len(state.rng_per_rank):
            raise UserError(f"{train.saving.resume}: saved with {len(state.rng_per_rank)} processes; resume with the "
                            f"same number.")
        if state.fingerprint != fingerprint:
            say(f"note: {train.saving.resume} was saved with different core options (learning rate, optimizer, "
                f"batch, seed, ...); continuing with the current ones.")
        seed = state.seed
    elif train.training.seed is not None:
        seed = train.training.seed
    else:  # kohya draws one; every process must use the same, or their data shards would overlap
        from accelerate.utils import broadcast_object_list
        seed = broadcast_object_list([int(torch.randint(0, 2**31 - 1, ()).item())])[0]
        say(f"note: no seed given; this run uses seed {seed} (set seed = {seed} to repeat it).")
    batches = data.batches_per_epoch(accelerator.num_processes)
    settings = TrainSettings(
        seed=seed, max_steps=data.length.max_steps(batches), steps_per_epoch=data.length.steps_per_epoch(batches),
        grad_accum=train.training.gradient_accumulation_steps, max_grad_norm=train.optimizer.max_grad_norm,
        text_encoder_until=text_encoder_until(train, loaded), max_chunks=train.model.max_token_length // 75,
        clip_skip=train.model.clip_skip, num_workers=min(train.dataset.max_data_loader_n_workers, _cpus()),
        persistent_workers=train.dataset.persistent_data_loader_workers, fingerprint=fingerprint)
    return RunPlan(settings, NoiseOptions.from_config(train), LossOptions.from_config(train), state)


def first_training_dataset(loaded: LoadedConfig):
    """The first dataset with training (not class) images: it sizes the plug-ins' pictures and batches."""
    return next(d for d in loaded.datasets.datasets if any(not s.is_reg for s in d.subsets))


def _first_resolution(loaded: LoadedConfig, model: SDModel) -> tuple[int, int]:
    """(width, height) of the first training dataset; the model's size when unset."""
    return first_training_dataset(loaded).resolution or (model.config.resolution,) * 2


def _with_regularization(regularization: RegularizationPlan, loaded: LoadedConfig, settings: TrainSettings,
                         model: SDModel, streams: Sequence[Stream], callbacks: Sequence[Callback]
                         ) -> tuple[list[Stream], list[Callback]]:
    """The regularization stream and monitor first, sized by the first dataset with training (not class) images."""
    first = first_training_dataset(loaded)
    reg_streams, reg_callbacks = regularization.plug_ins(
        loaded.train, settings.seed, _first_resolution(loaded, model), first.batch_size * settings.grad_accum)
    return [*reg_streams, *streams], [*reg_callbacks, *callbacks]


def assemble(train: TrainConfig, plan: RunPlan, model: SDModel, data: TrainingData, accelerator,
             streams: Sequence[Stream], callbacks: Sequence[Callback], say) -> Trainer:
    """The trainer with everything it runs with, built in one go: optimizer, lr schedule, noise schedule, plug-ins."""
    from ..sampling.schedule import alphas_cumprod, rescale_zero_terminal_snr
    from .lr_schedules import lr_scheduler_from_config
    from .optimizers import describe_optimizer, make_optimizer

    opt, settings = train.optimizer, plan.settings
    groups = [{"params": [p for p in model.unet.parameters()], "lr": opt.learning_rate}]
    if settings.text_encoder_until is not None:
        groups.append({"params": [p for p in model.text_encoder.parameters()],
                       "lr": opt.learning_rate_te if opt.learning_rate_te is not None else opt.learning_rate})
    optimizer, notes = make_optimizer(opt.optimizer_type, groups, opt.learning_rate, opt.optimizer_args)
    for note in notes:
        say(f"note: {note}")
    # Stepped once per optimizer step on every process, so it spans max_steps (not max_steps x processes).
    scheduler = lr_scheduler_from_config(optimizer, opt, settings.max_steps)
    model.unet, optimizer = accelerator.prepare(model.unet, optimizer)
    ac = alphas_cumprod(model.config.scheduler)
    if train.training.zero_terminal_snr:
        ac = rescale_zero_terminal_snr(ac)
    run_metadata = {"ss_max_train_steps": settings.max_steps, "ss_seed": settings.seed,
                    "ss_optimizer": describe_optimizer(optimizer), "ss_v2": model.family == "sd2",
                    "ss_tag_frequency": data.tag_frequency}
    writer = TrainedModelWriter(train, run_metadata)
    own = make_callbacks(train, settings, model.config.resolution, writer, say, accelerator.is_main_process)
    return Trainer(accelerator=accelerator, model=model, data=data, optimizer=optimizer, lr_scheduler=scheduler,
                   settings=settings, alphas_cumprod=ac, loss_options=plan.loss, noise_options=plan.noise,
                   callbacks=[*own[:-1], *callbacks, own[-1]],  # the saver last: it writes the others' state
                   streams=list(streams))


def make_accelerator(train: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    precision = train.training.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise UserError("mixed_precision = \"fp16\" needs a CUDA GPU; on the CPU use \"bf16\" or \"no\".")
    kwargs = [DistributedDataParallelKwargs(gradient_as_bucket_view=train.distributed.ddp_gradient_as_bucket_view,
                                            static_graph=train.distributed.ddp_static_graph)]
    if train.distributed.ddp_timeout:
        from datetime import timedelta
        kwargs.append(InitProcessGroupKwargs(timeout=timedelta(minutes=train.distributed.ddp_timeout)))
    return Accelerator(mixed_precision=precision, kwargs_handlers=kwargs)


def _printer(accelerator, log_file: str | None = None):
    """Log lines from the main process to stderr, and appended to `log_file` (console_log_file) when set."""
    def say(text: str) -> None:
        if accelerator.is_main_process and text:
            print(text, file=sys.stderr, flush=True)
            if log_file:
                with open(log_file, "a", encoding="utf-8") as f:
                    f.write(text + "\n")
    return say


def debug_batches(data, train: TrainConfig, count: int = 8) -> list[str]:
    """kohya's debug_dataset: show what the first batches hold (bucket, files, rendered captions), no training."""
    seed = train.training.seed or 0
    lines = ["--- debug_dataset: the first batches of epoch 1, nothing is trained ---"]
    for number, plan in enumerate(data.epoch_plan(0, seed)[:count], 1):
        batch = data.load_batch(plan)
        tensor = batch.latents if batch.latents is not None else batch.pixels
        lines.append(f"batch {number}: {plan.bucket[0]}x{plan.bucket[1]}, tensor {list(tensor.shape)}, "
                     f"loss weights {batch.loss_weights.tolist()}")
        lines += [f"  {key}: {caption}" for key, caption in zip(batch.keys, batch.captions)]
    return lines


def config_echo(train: TrainConfig, notes: list[str], accelerator) -> str:
    """What a bug report needs: versions, device, the options that differ from defaults, the notes."""
    import accelerate
    import diffusers
    import transformers

    lines = [f"certain-strategy training, {datetime.now().isoformat(timespec='seconds')}",
             f"python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
             f"transformers {transformers.__version__}, accelerate {accelerate.__version__}",
             f"device {accelerator.device}, processes {accelerator.num_processes}, "
             f"mixed precision {train.training.mixed_precision}",
             "--- options that differ from the defaults ---", dump_args_toml(train).rstrip(), "---"]
    lines += [note if "note:" in note else f"note: {note}" for note in notes]
    return "\n".join(lines)


def truncation_note(model, data, max_chunks: int) -> str:
    """Say once, at start, which captions are longer than max_token_length (their end is never trained)."""
    from ..text.conditioning import dropped_tokens

    dropped = [n for n in dropped_tokens(model.tokenizer, [item.caption for item in data.items], max_chunks,
                                         model.family) if n]
    if not dropped:
        return ""
    return (f"note: {len(dropped)} caption(s) are longer than max_token_length = {max_chunks * 75}: up to "
            f"{max(dropped)} tokens at their end are not trained. Set max_token_length = 150 or 225 to keep them.")


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _fingerprint(train: TrainConfig) -> str:
    """Options that must match for a resume to continue the same run (not paths, logging or saving)."""
    keep = {k: v for k, v in train.to_flat().items()
            if k in ("learning_rate", "learning_rate_te", "optimizer_type", "lr_scheduler", "train_batch_size",
                     "gradient_accumulation_steps", "seed", "max_token_length", "clip_skip")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_callbacks(train: TrainConfig, settings: TrainSettings, model_resolution: int,
                   writer: TrainedModelWriter, say, is_main: bool) -> list[Callback]:
    """Progress displays, logs, sample images, and the checkpoint saver (last)."""
    from .progress import JsonlProgress, TensorBoardLog, TqdmProgress
    from .samples import SampleImages, SampleOptions
    from .saving import CheckpointSaver, SavePolicy

    out = Path(train.saving.output_dir)
    callbacks: list[Callback] = [JsonlProgress(sys.stdout)] if train.certain.progress_stdout else [TqdmProgress()]
    if train.certain.progress_jsonl and is_main:
        callbacks.append(JsonlProgress.to_file(train.certain.progress_jsonl))
    lg = train.logging
    if lg.logging_dir:
        run_dir = TensorBoardLog.run_dir(lg.logging_dir, lg.log_prefix, lg.log_tracker_name)
        callbacks.append(TensorBoardLog(run_dir, dump_args_toml(train) if lg.log_config else None))
    if train.sample_prompt.sample_prompts:
        s = train.sample_prompt
        size = train.dataset.resolution or (model_resolution,) * 2
        callbacks.append(SampleImages(SampleOptions(Path(s.sample_prompts), s.sample_every_n_steps,
                                                    s.sample_every_n_epochs, s.sample_at_first,
                                                    sample_images_sampler(s.sample_sampler, say), tuple(size)),
                                      out, train.saving.output_name))
    sv = train.saving
    every_n_epochs = sv.save_every_n_epochs
    if sv.save_n_epoch_ratio:
        epochs = -(-settings.max_steps // max(settings.steps_per_epoch, 1))
        every_n_epochs = max(1, epochs // sv.save_n_epoch_ratio)
    callbacks.append(CheckpointSaver(SavePolicy.of(sv, every_n_epochs), writer))
    return callbacks


def sample_images_sampler(name: str, say) -> str:
    """The σ-sampler of sample images; one we don't have falls back to Euler a, with a note in the log."""
    from ..sampling.request import sampler_key

    try:
        return sampler_key(name)
    except UserError:
        say(f"note: sample_sampler `{name}` is not available; sample images use Euler a.")
        return "euler_a"


def _install_interrupt(stop: threading.Event, say):
    """First Ctrl-C: finish the current step, save a resumable state, exit. Second Ctrl-C: stop at once."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("\nstopping after this step and saving a resumable state (Ctrl-C again to stop at once)...")
    return signal.signal(signal.SIGINT, handler)
