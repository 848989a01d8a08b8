"""The overfit rule and the checkpoint it picks: pure functions of the measurements, so a test can pin them.

A run overfits when its validation loss stays above its running minimum by more than `tolerance` (relative) for
`patience` evaluations in a row; it began overfitting at the first evaluation of that streak. Optionally the
drift meter counts too: a mean drift above `max_drift` is overfitting from that evaluation on. The chosen
checkpoint is the last one saved before the overfitting began; with no overfitting, the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Evaluation:
    step: int
    validation_loss: float | None = None
    drift: float | None = None


@dataclass(frozen=True)
class Onset:
    """Overfitting was detected at `detected_step`; it began at `began_step`; `reason` says why in words."""

    detected_step: int
    began_step: int
    reason: str


@dataclass(frozen=True)
class OverfitRule:
    tolerance: float = 0.02
    patience: int = 3
    max_drift: float | None = None

    def describe(self) -> str:
        text = (f"validation loss above its running minimum by more than {self.tolerance:.1%} for {self.patience} "
                f"evaluation(s) in a row")
        return text + (f", or mean drift above {self.max_drift}" if self.max_drift is not None else "")

    def onset(self, evaluations: Sequence[Evaluation]) -> Onset | None:
        """The first point where the rule holds, or None."""
        best: Evaluation | None = None
        streak: list[Evaluation] = []
        for ev in evaluations:
            if self.max_drift is not None and ev.drift is not None and ev.drift > self.max_drift:
                return Onset(ev.step, ev.step, f"mean drift {ev.drift:.4f} at step {ev.step} is above max "
                                               f"{self.max_drift}")
            if ev.validation_loss is None:
                continue
            if best is None or ev.validation_loss < best.validation_loss:
                best = ev
            if ev.validation_loss > best.validation_loss * (1 + self.tolerance):
                streak.append(ev)
            else:
                streak = []
            if len(streak) >= self.patience:
                first = streak[0]
                return Onset(ev.step, first.step, (
                    f"validation loss rose above its minimum {best.validation_loss:.5f} (step {best.step}) by more "
                    f"than {self.tolerance:.1%} at step {first.step} ({first.validation_loss:.5f}) and stayed there "
                    f"for {len(streak)} evaluation(s), to step {ev.step}"))
        return None


def choose_checkpoint(saved_steps: Sequence[int], onset: Onset | None) -> tuple[int | None, str]:
    """(index into `saved_steps` of the chosen checkpoint or None, why in words)."""
    if not saved_steps:
        return None, "no checkpoint saved yet"
    if onset is None:
        return len(saved_steps) - 1, "no overfitting detected: the last checkpoint"
    before = [i for i, step in enumerate(saved_steps) if step < onset.began_step]
    if not before:
        return None, f"overfitting began at step {onset.began_step}, before the first checkpoint: {onset.reason}"
    i = before[-1]
    return i, f"the last checkpoint before overfitting began at step {onset.began_step}: {onset.reason}"
