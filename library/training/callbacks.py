"""The two small interfaces the loop knows: extra batch streams and callbacks.

Everything optional around training (progress display, logs, sample images, checkpoint saving, later
validation, drift probes and the regularization stream) plugs in through these, so the loop itself has no
branches for features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..data.batch import Batch
    from .loop import Trainer


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


class Callback:
    """Hooks around the loop; every method is optional. Return values are ignored."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer", result: StepResult) -> None: ...

    def on_epoch_end(self, trainer: "Trainer") -> None: ...

    def on_train_end(self, trainer: "Trainer", interrupted: bool) -> None: ...

    def on_event(self, trainer: "Trainer", name: str, fields: dict[str, Any]) -> None:
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

    def batches_for_step(self, trainer: "Trainer", step: int) -> list["Batch"]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
