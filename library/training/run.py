"""One training run, assembled from the config: data, accelerator, model, optimizer, callbacks, resume.

The order matters for users: the dataset is scanned (and an empty or broken one reported) before any
model loads, and the config echo comes first in the log so a pasted log says how the run was set up.
"""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Sequence

import torch

from ..config import LoadedConfig, TrainConfig, dump_args_toml
from ..errors import UserError
from ..regularization.setup import plan_regularization
from .callbacks import Callback, Stream
from .loop import TrainSettings, Trainer, steps_per_epoch
from .model_setup import cache_latents, load_base_model, prepare_model, text_encoder_until
from .outputs import save_trained_model
from .resume import resume, write_state
from .support import unsupported_notes


def run_training(loaded: LoadedConfig, *, streams: Sequence[Stream] = (), callbacks: Sequence[Callback] = ()) -> int:
    """Train as configured; returns the process exit code (0 done, 130 interrupted with a saved state).

    `streams` and `callbacks` are the plug-in points of the workflows built on the trainer (regularization
    streams, validation, drift probes): they join the run's own before it starts, and are saved with its state.
    """
    from ..data.dataset import build_training_data

    train = loaded.train
    if loaded.datasets is None:
        raise UserError("no training data: set train_data_dir (the parent of `10_name` folders), in_json with "
                        "train_data_dir, or dataset_config.")
    if not train.saving.output_dir:
        raise UserError("output_dir is not set: where should checkpoints, samples and logs go?")
    data = build_training_data(loaded.datasets, train, strict_data=train.certain.strict_data)
    accelerator = make_accelerator(train)
    say = _printer(accelerator, train.logging.console_log_file)
    say(config_echo(train, loaded.notes + unsupported_notes(train), accelerator))
    say("\n".join(data.describe()))
    if train.dataset.debug_dataset:
        say("\n".join(debug_batches(data, train)))
        return 0
    regularization = plan_regularization(train, data, say, accelerator.is_main_process)
    model = load_base_model(train)
    say("\n".join(model.describe()))
    settings = make_settings(train, loaded, data, accelerator)
    if train.training.seed is None:
        say(f"note: no seed given; this run uses seed {settings.seed} (set seed = {settings.seed} to repeat it).")
    say(truncation_note(model, data, settings.max_chunks))
    prepare_model(model, train, accelerator, say)
    if train.dataset.cache_latents or train.dataset.cache_latents_to_disk:
        cache_latents(data, model, train, accelerator)
    trainer = make_trainer(train, model, data, accelerator, settings, say)
    if regularization is not None:  # sized by the first dataset with training (not class) images
        first = next(d for d in loaded.datasets.datasets if any(not s.is_reg for s in d.subsets))
        reg_streams, reg_callbacks = regularization.attach(
            train, trainer, first.resolution or (model.config.resolution,) * 2, first.batch_size)
        streams, callbacks = [*reg_streams, *streams], [*reg_callbacks, *callbacks]
    trainer.streams += list(streams)
    trainer.callbacks[-1:-1] = list(callbacks)  # before the saver, which writes their state
    if train.saving.resume:
        resume(trainer, Path(train.saving.resume), say)
    previous = _install_interrupt(trainer, say)
    try:
        finished = trainer.fit()
    except KeyboardInterrupt:  # the second Ctrl-C: mid-step, so no state is written that could be inconsistent
        say("stopped at once; no state was saved. Resume from the last saved state, if any.")
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    say("training finished." if finished else "training interrupted: a resumable state was saved (see above).")
    return 0 if finished else 130


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


def total_steps(train: TrainConfig, steps_per_epoch: int) -> int:
    epochs = train.training.max_train_epochs
    return epochs * steps_per_epoch if epochs else train.training.max_train_steps


def make_settings(train: TrainConfig, loaded: LoadedConfig, data, accelerator) -> TrainSettings:
    accum = train.training.gradient_accumulation_steps
    per_epoch = steps_per_epoch(data.batches_per_epoch(accelerator.num_processes), accum)
    seed = train.training.seed
    if seed is None:  # kohya draws one; every process must use the same, or their data shards would overlap
        from accelerate.utils import broadcast_object_list
        seed = broadcast_object_list([int(torch.randint(0, 2**31 - 1, ()).item())])[0]
    return TrainSettings(
        seed=seed, max_steps=total_steps(train, per_epoch), grad_accum=accum,
        max_grad_norm=train.optimizer.max_grad_norm, text_encoder_until=text_encoder_until(train, loaded),
        max_chunks=train.model.max_token_length // 75, clip_skip=train.model.clip_skip,
        num_workers=min(train.dataset.max_data_loader_n_workers, _cpus()),
        persistent_workers=train.dataset.persistent_data_loader_workers,
        fingerprint=_fingerprint(train))


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _fingerprint(train: TrainConfig) -> str:
    """Options that must match for a resume to continue the same run (not paths, logging or saving)."""
    keep = {k: v for k, v in train.to_flat().items()
            if k in ("learning_rate", "learning_rate_te", "optimizer_type", "lr_scheduler", "train_batch_size",
                     "gradient_accumulation_steps", "seed", "max_token_length", "clip_skip")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_trainer(train: TrainConfig, model, data, accelerator, settings: TrainSettings, say) -> Trainer:
    from ..sampling.schedule import alphas_cumprod, rescale_zero_terminal_snr
    from .losses import LossOptions
    from .lr_schedules import lr_scheduler_from_config
    from .optimizers import describe_optimizer, make_optimizer

    opt = train.optimizer
    groups = [{"params": [p for p in model.unet.parameters()], "lr": opt.learning_rate}]
    if settings.text_encoder_until is not None:
        groups.append({"params": [p for p in model.text_encoder.parameters()],
                       "lr": opt.learning_rate_te if opt.learning_rate_te is not None else opt.learning_rate})
    else:
        model.text_encoder.requires_grad_(False)
        model.text_encoder.eval()
    optimizer, notes = make_optimizer(opt.optimizer_type, groups, opt.learning_rate, opt.optimizer_args)
    settings.optimizer_description = describe_optimizer(optimizer)
    for note in notes:
        say(f"note: {note}")
    # Stepped once per optimizer step on every process, so it spans max_steps (not max_steps x processes).
    scheduler = lr_scheduler_from_config(optimizer, opt, settings.max_steps)
    model.unet, optimizer = accelerator.prepare(model.unet, optimizer)
    ac = alphas_cumprod(model.config.scheduler)
    if train.training.zero_terminal_snr:
        ac = rescale_zero_terminal_snr(ac)
    t = train.training
    noise_options = {
        "noise": dict(noise_offset=t.noise_offset, noise_offset_random_strength=t.noise_offset_random_strength,
                      adaptive_noise_scale=t.adaptive_noise_scale, multires_iterations=t.multires_noise_iterations,
                      multires_discount=t.multires_noise_discount),
        "timesteps": dict(min_timestep=t.min_timestep, max_timestep=t.max_timestep),
        "perturb": dict(ip_noise_gamma=t.ip_noise_gamma, random_strength=t.ip_noise_gamma_random_strength),
    }
    trainer = Trainer(accelerator=accelerator, model=model, data=data, optimizer=optimizer, lr_scheduler=scheduler,
                      settings=settings, alphas_cumprod=ac, loss_options=LossOptions.from_config(train),
                      noise_options=noise_options)
    trainer.callbacks = make_callbacks(train, trainer)
    return trainer


def make_callbacks(train: TrainConfig, trainer: Trainer) -> list[Callback]:
    from .progress import JsonlProgress, TensorBoardLog, TqdmProgress
    from .samples import SampleImages, SampleSchedule
    from .saving import CheckpointSaver, SavePolicy

    out = Path(train.saving.output_dir)
    callbacks: list[Callback] = [JsonlProgress(sys.stdout)] if train.certain.progress_stdout else [TqdmProgress()]
    if train.certain.progress_jsonl and trainer.is_main:
        callbacks.append(JsonlProgress.to_file(train.certain.progress_jsonl))
    lg = train.logging
    if lg.logging_dir:
        run_dir = TensorBoardLog.run_dir(lg.logging_dir, lg.log_prefix, lg.log_tracker_name)
        callbacks.append(TensorBoardLog(run_dir, dump_args_toml(train) if lg.log_config else None))
    if train.sample_prompt.sample_prompts:
        s = train.sample_prompt
        size = train.dataset.resolution or (trainer.model.config.resolution,) * 2
        callbacks.append(SampleImages(SampleSchedule(Path(s.sample_prompts), s.sample_every_n_steps,
                                                     s.sample_every_n_epochs, s.sample_at_first,
                                                     sample_sampler(s.sample_sampler, trainer), tuple(size)),
                                      out, train.saving.output_name))
    sv = train.saving
    every_n_epochs = sv.save_every_n_epochs
    if sv.save_n_epoch_ratio:
        epochs = -(-trainer.settings.max_steps // max(trainer.steps_per_epoch, 1))
        every_n_epochs = max(1, epochs // sv.save_n_epoch_ratio)
    policy = SavePolicy(out, sv.output_name, sv.save_model_as or "safetensors", sv.save_precision, every_n_epochs,
                        sv.save_every_n_steps, sv.save_last_n_epochs, sv.save_last_n_epochs_state,
                        sv.save_last_n_steps, sv.save_last_n_steps_state, sv.save_state, sv.save_state_on_train_end)
    callbacks.append(CheckpointSaver(policy, lambda path: save_trained_model(trainer, train, path, policy),
                                     lambda folder: write_state(trainer, folder)))
    return callbacks


def sample_sampler(name: str, trainer: Trainer) -> str:
    """kohya's default is DDIM, which arrives with the A1111 generation issue; until then Euler a stands in."""
    from ..sampling.request import sampler_key

    try:
        return sampler_key(name)
    except UserError:
        _printer(trainer.accelerator)(f"note: sample_sampler `{name}` is not available yet; sample images use Euler a.")
        return "euler_a"


def _install_interrupt(trainer: Trainer, say):
    """First Ctrl-C: finish the current step, save a resumable state, exit. Second Ctrl-C: stop at once."""
    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        say("\nstopping after this step and saving a resumable state (Ctrl-C again to stop at once)...")
    return signal.signal(signal.SIGINT, handler)
