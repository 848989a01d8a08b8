"""The measurements callback: validation loss, drift and similarity to the base, checkpoint by checkpoint.

It evaluates before the first step and every `every_n_steps` steps or `every_n_epochs` epochs when those are set,
and at every save (an evaluation is made once per step). Every process evaluates alike, so their weights and
decisions stay identical (a schedule-free optimizer's eval switch is not exactly undone); the main one writes. Then:
- logs a `validation` progress event whose `scalars` TensorBoard plots;
- applies the overfit rule (`overfit.py`) and, with `stop_on_overfit`, ends the run cleanly;
- at each save, adds the checkpoint to `<output_dir>/checkpoints.json` with its step, epoch, mean train loss since
  the previous checkpoint, validation loss, drift and similarity, marks the chosen one and says why, and rewrites
  the report (`report.py`). Its history is part of the resumable state, so a resumed run continues the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..atomic import atomic_write_text
from ..plugins import Callback, LoopContext, StepResult
from ..similarity.behaviour import Drift, ProbeInputs, drift_of, predictions
from .overfit import Evaluation, OverfitRule, choose_checkpoint
from .report import write_report

if TYPE_CHECKING:
    from ..data.batch import Batch
    from ..data.dataset import TrainingData
    from ..models.sd_model import SDModel
    from ..similarity.probe import BaseProbe

VALIDATION_TIMESTEPS = (100, 300, 500, 700, 900)  # every validation image is scored at each (kohya's idea)
MOST_MOVED = 5


@dataclass(frozen=True)
class ValidationPass:
    """The held-out data and how to score it: the same batches, timesteps and noise at every evaluation."""

    data: TrainingData
    seed: int
    max_batches: int | None = None

    def loss(self, evaluation_loss: Callable[[Batch, torch.Generator, int], torch.Tensor]) -> float:
        generator = torch.Generator().manual_seed(self.seed)
        losses = []
        for plan in self.data.epoch_plan(0, self.seed)[:self.max_batches]:
            batch = self.data.load_batch(plan)
            losses += [evaluation_loss(batch, generator, t) for t in VALIDATION_TIMESTEPS]
        return float(torch.cat(losses).mean())


@dataclass(frozen=True)
class DriftMeter:
    """The base model's predictions on fixed single-word inputs, made once; `measure` compares a model to them."""

    inputs: ProbeInputs
    reference: torch.Tensor
    clip_skip: int | None = None

    @classmethod
    def of_base(cls, model: SDModel, inputs: ProbeInputs, clip_skip: int | None) -> DriftMeter:
        return cls(inputs, predictions(model, inputs, clip_skip), clip_skip)

    def measure(self, model: SDModel) -> Drift:
        return drift_of(self.inputs, self.reference, predictions(model, self.inputs, self.clip_skip))


@dataclass
class Measurements(Callback):
    output_dir: Path
    rule: OverfitRule
    validation: ValidationPass | None = None
    drift: DriftMeter | None = None
    similarity_probe: BaseProbe | None = None
    every_n_steps: int | None = None
    every_n_epochs: int | None = None
    stop_on_overfit: bool = False
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    losses_since_save: list[float] = field(default_factory=list)
    overfit_reported: bool = False
    epoch: int = 0  # the epoch the latest step belongs to (1-based; 0 before any step)

    # ---- hooks ------------------------------------------------------------------------------------------
    def on_train_start(self, ctx: LoopContext) -> None:
        if ctx.global_step == 0 and (self.every_n_steps or self.every_n_epochs):
            self._evaluate(ctx)  # the base's own figures: where the curves start

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        self.losses_since_save.append(result.loss)
        self.epoch = result.epoch
        if self.every_n_steps and result.step % self.every_n_steps == 0:
            self._evaluate(ctx)

    def on_epoch_end(self, ctx: LoopContext) -> None:
        self.epoch = ctx.epoch
        if self.every_n_epochs and ctx.epoch % self.every_n_epochs == 0:
            self._evaluate(ctx)

    def on_event(self, ctx: LoopContext, name: str, fields: dict[str, Any]) -> None:
        if name == "save":
            self._add_checkpoint(ctx, Path(fields["path"]))

    def state_dict(self) -> dict[str, Any]:
        return {"evaluations": self.evaluations, "checkpoints": self.checkpoints,
                "losses_since_save": self.losses_since_save, "overfit_reported": self.overfit_reported,
                "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evaluations = list(state.get("evaluations", []))
        self.checkpoints = list(state.get("checkpoints", []))
        self.losses_since_save = list(state.get("losses_since_save", []))
        self.overfit_reported = bool(state.get("overfit_reported", False))
        self.epoch = int(state.get("epoch", 0))

    # ---- work -------------------------------------------------------------------------------------------
    def _evaluate(self, ctx: LoopContext) -> dict[str, Any]:
        """This step's evaluation, made once: validation loss, drift and similarity, all on one entry of the
        sampling model."""
        if self.evaluations and self.evaluations[-1]["step"] == ctx.global_step:
            return self.evaluations[-1]
        record: dict[str, Any] = {"step": ctx.global_step, "epoch": self.epoch}
        with ctx.sampling_model() as model:
            if self.validation is not None:
                record["validation_loss"] = self.validation.loss(partial(ctx.evaluation_loss, model))
            if self.drift is not None:
                drift = self.drift.measure(model)
                record["drift"] = drift.mean
                record["most_moved"] = [{"word": w, "drift": round(d, 6)} for w, d in drift.most_moved(MOST_MOVED)]
            if self.similarity_probe is not None:
                from ..similarity.state_dicts import similarity_of_probe

                record["similarity"] = similarity_of_probe(self.similarity_probe, model.unet.state_dict()).similarity
        self.evaluations.append(record)
        scalars = {k: record[k] for k in ("validation_loss", "drift", "similarity") if k in record}
        ctx.log_event("validation", step=ctx.global_step, scalars=scalars,
                      **({"most_moved": record["most_moved"]} if "most_moved" in record else {}))
        self._check_overfit(ctx)
        return record

    def _check_overfit(self, ctx: LoopContext) -> None:
        """Tell the logs once; with stop_on_overfit end the run (again after a resume past the detection)."""
        onset = self.rule.onset(self._series())
        if onset is None:
            return
        if not self.overfit_reported:
            self.overfit_reported = True
            ctx.log_event("overfit", step=ctx.global_step, began_step=onset.began_step, reason=onset.reason)
        if self.stop_on_overfit:
            ctx.finish(f"stop_on_overfit: {onset.reason}")

    def _series(self) -> list[Evaluation]:
        return [Evaluation(e["step"], e.get("validation_loss"), e.get("drift")) for e in self.evaluations]

    def _add_checkpoint(self, ctx: LoopContext, path: Path) -> None:
        record = self._evaluate(ctx)
        row: dict[str, Any] = {"path": path.name, "step": ctx.global_step, "epoch": self.epoch,
                               "train_loss": (sum(self.losses_since_save) / len(self.losses_since_save)
                                              if self.losses_since_save else None),
                               **{k: record.get(k) for k in ("validation_loss", "drift", "similarity", "most_moved")}}
        self.checkpoints = [c for c in self.checkpoints if c["path"] != row["path"]] + [row]
        self.losses_since_save = []
        if ctx.is_main:
            self.write()

    def summary(self) -> dict[str, Any]:
        """What checkpoints.json holds: the rule, every checkpoint, every evaluation, the choice and why."""
        onset = self.rule.onset(self._series())
        index, reason = choose_checkpoint([c["step"] for c in self.checkpoints], onset)
        checkpoints = [{**c, "chosen": i == index} for i, c in enumerate(self.checkpoints)]
        return {"rule": {**asdict(self.rule), "description": self.rule.describe()},
                "drift_words": list(self.drift.inputs.words) if self.drift else [],
                "overfitting": None if onset is None else asdict(onset),
                "chosen": None if index is None else {"path": self.checkpoints[index]["path"],
                                                      "step": self.checkpoints[index]["step"], "reason": reason},
                "reason": reason, "checkpoints": checkpoints, "evaluations": self.evaluations}

    def write(self) -> None:
        summary = self.summary()
        atomic_write_text(self.output_dir / "checkpoints.json", json.dumps(summary, indent=2) + "\n")
        write_report(self.output_dir, summary)

