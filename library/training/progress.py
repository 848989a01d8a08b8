"""Progress for people and programs: a tqdm bar, JSON-lines events, TensorBoard scalars.

The JSON-lines stream is the contract with the WebUI tab: one object per line, always with `event` and
`time`; `step` events carry step, epoch, loss, per-stream losses, lr, it/s and ETA in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..plugins import Callback, LoopContext, StepResult


@dataclass
class Rate:
    """Steps per second over the recent steps (EMA), and the ETA it implies."""

    smoothing: float = 0.1
    per_second: float = 0.0

    def update(self, seconds: float) -> float:
        current = 1.0 / max(seconds, 1e-9)
        self.per_second = current if self.per_second == 0 else (1 - self.smoothing) * self.per_second + self.smoothing * current
        return self.per_second

    def eta(self, remaining_steps: int) -> float:
        return remaining_steps / self.per_second if self.per_second else float("nan")


@dataclass
class JsonlProgress(Callback):
    stream: IO[str]
    rate: Rate = field(default_factory=Rate)

    @classmethod
    def to_file(cls, path: str | Path) -> "JsonlProgress":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return cls(open(path, "a", encoding="utf-8", buffering=1))

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now().isoformat(timespec="seconds"), **fields}
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def on_train_start(self, ctx: LoopContext) -> None:
        if ctx.is_main:
            self.emit("start", step=ctx.global_step, total_steps=ctx.max_steps,
                      steps_per_epoch=ctx.steps_per_epoch, epoch=ctx.epoch + 1)

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        if ctx.is_main:
            rate = self.rate.update(result.seconds)
            self.emit("step", step=result.step, total_steps=ctx.max_steps, epoch=result.epoch,
                      loss=result.loss, losses=result.stream_losses, lr=result.lr, samples=result.samples,
                      it_s=round(rate, 4), eta_s=round(self.rate.eta(ctx.max_steps - result.step), 1))

    def on_epoch_end(self, ctx: LoopContext) -> None:
        if ctx.is_main:
            self.emit("epoch", epoch=ctx.epoch, step=ctx.global_step)

    def on_event(self, ctx: LoopContext, name: str, fields: dict[str, Any]) -> None:
        if ctx.is_main:
            self.emit(name, **fields)

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        if ctx.is_main:
            self.emit("end", step=ctx.global_step, interrupted=interrupted)
        if self.stream not in (sys.stdout, sys.stderr):
            self.stream.close()


@dataclass
class TqdmProgress(Callback):
    """The bar on stderr: loss (smoothed), lr, it/s and ETA, as kohya users know it."""

    bar: Any = None
    smoothed: float | None = None

    def on_train_start(self, ctx: LoopContext) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=ctx.max_steps, initial=ctx.global_step, desc="steps",
                        disable=not ctx.is_main, dynamic_ncols=True, smoothing=0.1)

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        self.smoothed = result.loss if self.smoothed is None else 0.95 * self.smoothed + 0.05 * result.loss
        self.bar.set_postfix(loss=f"{self.smoothed:.4f}", lr=f"{result.lr:.2e}", epoch=result.epoch, refresh=False)
        self.bar.update(1)

    def on_event(self, ctx: LoopContext, name: str, fields: dict[str, Any]) -> None:
        if ctx.is_main and name in ("save", "state", "sample", "note"):
            self.bar.write(f"{name}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        self.bar.close()


@dataclass
class TensorBoardLog(Callback):
    """Scalars under `<logging_dir>/<log_prefix><YYYYmmddHHMMSS>` (kohya's layout): loss, per-stream loss, lr."""

    log_dir: Path
    options_toml: str | None = None  # log_config: the run's options as text, shown under TEXT in TensorBoard
    writer: Any = None

    @staticmethod
    def run_dir(logging_dir: str | Path, prefix: str | None, tracker_name: str | None = None) -> Path:
        run = Path(logging_dir) / f"{prefix or ''}{time.strftime('%Y%m%d%H%M%S')}"
        return run / tracker_name if tracker_name else run

    def on_train_start(self, ctx: LoopContext) -> None:
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
            if self.options_toml:
                self.writer.add_text("options", "```toml\n" + self.options_toml + "```", 0)

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        if self.writer is not None:
            self.writer.add_scalar("loss/total", result.loss, result.step)
            for name, value in result.stream_losses.items():
                self.writer.add_scalar(f"loss/{name}", value, result.step)
            self.writer.add_scalar("lr/unet", result.lr, result.step)

    def on_event(self, ctx: LoopContext, name: str, fields: dict[str, Any]) -> None:
        """Events with `scalars` (e.g. the regularization monitor's) are plotted as `<event>/<name>`."""
        if self.writer is not None and "scalars" in fields:
            for key, value in fields["scalars"].items():
                self.writer.add_scalar(f"{name}/{key}", value, fields.get("step", ctx.global_step))

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        if self.writer is not None:
            self.writer.close()
