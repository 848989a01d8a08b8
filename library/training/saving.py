"""Checkpoint and state saving on kohya's schedule and with kohya's file names.

Final model `<name>.<ext>` (name defaults to `last`), per epoch `<name>-000003.<ext>`, per step
`<name>-step00000500.<ext>`; states beside them as `<model name>-state`. Only the main process writes.
`save_last_n_epochs` keeps the newest N epoch saves; `save_last_n_steps` keeps step saves newer than N
steps (a window, as kohya). Ctrl-C writes a resumable `<name>-interrupted-state`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..plugins import Callback, LoopContext, StepResult

if TYPE_CHECKING:
    from ..config.train_config import SavingArgs
    from ..models.sd_model import SDModel

EXTENSIONS = {"safetensors": ".safetensors", "ckpt": ".ckpt", "diffusers": "", "diffusers_safetensors": ""}


@dataclass
class SavePolicy:
    output_dir: Path
    output_name: str | None = None
    save_model_as: str = "safetensors"
    every_n_epochs: int | None = None
    every_n_steps: int | None = None
    last_n_epochs: int | None = None
    last_n_epochs_state: int | None = None
    last_n_steps: int | None = None
    last_n_steps_state: int | None = None
    save_state: bool = False
    save_state_on_train_end: bool = False

    @classmethod
    def of(cls, s: SavingArgs, every_n_epochs: int | None = None) -> SavePolicy:
        """The policy the saving options describe; `every_n_epochs` as the run resolved it (save_n_epoch_ratio)."""
        return cls(Path(s.output_dir), s.output_name, s.save_model_as or "safetensors", every_n_epochs,
                   s.save_every_n_steps, s.save_last_n_epochs, s.save_last_n_epochs_state, s.save_last_n_steps,
                   s.save_last_n_steps_state, s.save_state, s.save_state_on_train_end)

    def model_path(self, kind: str, number: int = 0) -> Path:
        ext = EXTENSIONS[self.save_model_as]
        if kind == "final":
            stem = self.output_name or "last"
        elif kind == "epoch":
            stem = f"{self.output_name or 'epoch'}-{number:06d}"
        elif kind == "step":
            stem = f"{self.output_name or 'at'}-step{number:08d}"
        else:
            stem = f"{self.output_name or 'last'}-interrupted"
        return self.output_dir / f"{stem}{ext}"

    @staticmethod
    def state_path(model_path: Path) -> Path:
        return model_path.with_name(model_path.name.removesuffix(model_path.suffix) + "-state")


@dataclass
class CheckpointSaver(Callback):
    """Saves models (and states) at epoch/step boundaries and at the end."""

    policy: SavePolicy
    save_model: Callable[[SDModel, Path, LoopContext], None]  # writes a model (with the run's metadata) to a path

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        p = self.policy
        if p.every_n_steps and result.step % p.every_n_steps == 0 and result.step < ctx.max_steps:
            self._save(ctx, p.model_path("step", result.step), p.save_state)
            self._prune(ctx, "step", result.step)

    def on_epoch_end(self, ctx: LoopContext) -> None:
        p, epoch = self.policy, ctx.epoch
        if p.every_n_epochs and epoch % p.every_n_epochs == 0 and ctx.global_step < ctx.max_steps:
            self._save(ctx, p.model_path("epoch", epoch), p.save_state)
            self._prune(ctx, "epoch", epoch)

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        p = self.policy
        if interrupted:
            self._write_state(ctx, p.state_path(p.model_path("interrupted")))
            return
        self._save(ctx, p.model_path("final"), p.save_state or p.save_state_on_train_end)

    def _save(self, ctx: LoopContext, path: Path, with_state: bool) -> None:
        with ctx.sampling_model() as model:  # on every process, so their weights stay identical
            if ctx.is_main:
                self.save_model(model, path, ctx)
        ctx.log_event("save", path=str(path), step=ctx.global_step)  # every process: measurements run on each
        if with_state:
            self._write_state(ctx, self.policy.state_path(path))
        ctx.wait_for_everyone()

    def _write_state(self, ctx: LoopContext, folder: Path) -> None:
        ctx.write_state(folder)  # gathers RNG states from every rank; the main process writes
        if ctx.is_main:
            ctx.log_event("state", path=str(folder), step=ctx.global_step)

    def _prune(self, ctx: LoopContext, kind: str, number: int) -> None:
        """Drop saves that fall out of the keep window (kohya's save_last_n_* semantics)."""
        if not ctx.is_main:
            return
        p = self.policy
        if kind == "epoch":
            keep_models, keep_states, every = p.last_n_epochs, p.last_n_epochs_state, p.every_n_epochs or 1
            old = number - every * (keep_models or 0)
            old_state = number - every * (keep_states or keep_models or 0)
        else:
            keep_models, keep_states, every = p.last_n_steps, p.last_n_steps_state, p.every_n_steps or 1
            old = _window_start(number, keep_models or 0, every)
            old_state = _window_start(number, keep_states or keep_models or 0, every)
        if keep_models and old > 0:
            _remove(p.model_path(kind, old))
        if (keep_states or keep_models) and old_state > 0:
            _remove(p.state_path(p.model_path(kind, old_state)))


def _window_start(step: int, window: int, every: int) -> int:
    """The step save that just left a window of `window` steps (kohya: step - N - 1, rounded down to a save)."""
    start = step - window - 1
    return start - start % every


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
