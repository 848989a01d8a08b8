"""Writing and restoring the resumable state of a live trainer (the folder format is in `state`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from .loop import Trainer
from .state import Progress, load_state, restore_rng, rng_state, save_state


def write_state(trainer: Trainer, folder: Path) -> None:
    from accelerate.utils import gather_object

    rng = gather_object([rng_state(trainer.generator)])
    if trainer.is_main:
        modules = {"unet": trainer.model_for_sampling().unet}
        if trainer.settings.text_encoder_until is not None:
            modules["text_encoder"] = trainer.model.text_encoder
        progress = replace(trainer.progress, extra={
            "streams": {s.name: s.state_dict() for s in trainer.streams},
            "callbacks": {type(c).__name__: c.state_dict() for c in trainer.callbacks}})
        scaler = getattr(trainer.accelerator, "scaler", None)
        save_state(folder, progress=progress, modules=modules, optimizer=trainer.optimizer,
                   lr_scheduler=trainer.lr_scheduler, scaler=scaler, rng_per_rank=rng,
                   fingerprint=trainer.settings.fingerprint, seed=trainer.settings.seed)
    trainer.accelerator.wait_for_everyone()


def resume(trainer: Trainer, folder: Path, say) -> None:
    state = load_state(folder)
    if state.fingerprint != trainer.settings.fingerprint:
        say(f"note: {folder} was saved with different core options (learning rate, optimizer, batch, seed, ...); "
            f"continuing with the current ones.")
    trainer.model_for_sampling().unet.load_state_dict(state.weights["unet"])  # copies, keeping each dtype
    if "text_encoder" in state.weights:
        trainer.model.text_encoder.load_state_dict(state.weights["text_encoder"])
    trainer.optimizer.load_state_dict(state.optimizer["optimizer"])
    trainer.lr_scheduler.load_state_dict(state.optimizer["lr_scheduler"])
    scaler = getattr(trainer.accelerator, "scaler", None)
    if scaler is not None and state.optimizer.get("scaler"):
        scaler.load_state_dict(state.optimizer["scaler"])
    rank = trainer.accelerator.process_index
    if rank >= len(state.rng_per_rank):
        raise UserError(f"{folder}: saved with {len(state.rng_per_rank)} processes; resume with the same number.")
    restore_rng(trainer.generator, state.rng_per_rank[rank])
    extra = state.progress.extra
    for stream in trainer.streams:
        stream.load_state_dict(extra.get("streams", {}).get(stream.name, {}))
    for cb in trainer.callbacks:
        cb.load_state_dict(extra.get("callbacks", {}).get(type(cb).__name__, {}))
    trainer.progress = Progress(state.progress.global_step, state.progress.epoch, state.progress.batch_in_epoch)
    trainer.settings.seed = state.seed
    say(f"resumed from {folder} at step {trainer.progress.global_step} (epoch {trainer.progress.epoch + 1}).")
