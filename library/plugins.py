"""The plug-in interface of the training loop: extra batch streams, callbacks, and the narrow context they get.

Everything optional around training (progress display, logs, sample images, checkpoint saving, the
regularization stream, the validation and drift measurements) plugs in through these, so the loop has no branches
for features. A plug-in sees a `LoopContext` (which process it runs on, where the run is, how to log, the model
to generate with), never the trainer itself: it cannot reach into the optimizer or the data, and the packages
that provide plug-ins (`regularization`, `validation`) need not import `training`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

if TYPE_CHECKING:
    import torch

    from .data.batch import Batch
    from .models.sd_model import SDModel


@dataclass(frozen=True)
class StepResult:
    """One optimizer step, as callbacks see it."""

    step: int  # global step after this update (1-based)
    epoch: int  # epoch in progress (1-based)
    loss: float  # weighted mean loss over the step's samples
    stream_losses: dict[str, float]  # mean loss per stream name ("train", "reg", ...)
    lr: float
    samples: int
    seconds: float  # wall time of the step, making its streams' batches included


class LoopContext(Protocol):
    """What a plug-in may know and do. Methods marked "every process" must be called on all processes alike."""

    rank: int
    world_size: int
    device: torch.device
    dtype: torch.dtype  # the mixed-precision dtype, for generating with the weights being trained
    max_steps: int
    steps_per_epoch: int

    @property
    def is_main(self) -> bool: ...

    @property
    def global_step(self) -> int:
        """Optimizer steps done so far."""

    @property
    def epoch(self) -> int:
        """Epochs completed so far (the one in progress is `epoch + 1`)."""

    def log_event(self, name: str, **fields: Any) -> None:
        """Tell the progress displays and logs (every callback's `on_event`) that something happened."""

    def sampling_model(self) -> ContextManager[SDModel]:
        """The model as it is now, plain (not DDP-wrapped) and with a schedule-free optimizer's eval weights, for
        generating and saving; every process (their weights must stay identical)."""

    def wait_for_everyone(self) -> None:
        """A barrier; every process."""

    def write_state(self, folder: Path) -> None:
        """Save a resumable state of the run as it is now; every process."""

    def evaluation_loss(self, model: SDModel, batch: Batch, generator: torch.Generator, timestep: int) -> torch.Tensor:
        """Per-sample training losses of `batch` under `model` (from `sampling_model`, entered once per evaluation:
        a schedule-free optimizer's switch is not exactly undone) at one fixed timestep with noise from
        `generator`, no gradients (validation)."""

    def finish(self, reason: str) -> None:
        """End the run cleanly after the current step (final save as usual), telling the logs why; any process."""


class Callback:
    """Hooks around the loop; every method is optional. Return values are ignored."""

    def on_train_start(self, ctx: LoopContext) -> None: ...

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None: ...

    def on_epoch_end(self, ctx: LoopContext) -> None: ...

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None: ...

    def on_event(self, ctx: LoopContext, name: str, fields: dict[str, Any]) -> None:
        """Something happened that progress displays may report (a save, sample images, a note)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stream(Protocol):
    """A source of extra micro-batches mixed into optimizer steps (e.g. self-generated regularization).

    `batches_for_step` is called once per optimizer step before it runs and may return no batches; its
    state must make a resumed run draw the same batches as an uninterrupted one.
    """

    name: str

    def batches_for_step(self, ctx: LoopContext, step: int) -> list[Batch]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
