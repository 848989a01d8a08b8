"""From the validation options to the measurements callback, in two parts like the regularization's: the word list
and held-out data are checked right after the dataset scan (`plan_measurements`), and the base model's reference
predictions and similarity probe are made once the base is loaded and before any resumed weights replace it
(`MeasurementPlan.callback`), so a resumed run measures against the same base as the first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import UserError
from ..regularization.setup import trigger_words
from ..regularization.wordfreq import WordList, load_word_list, words_from_texts
from ..similarity.behaviour import ProbeInputs
from .measurements import DriftMeter, Measurements, ValidationPass
from .overfit import OverfitRule

if TYPE_CHECKING:
    from ..config.dataset_spec import DatasetConfig
    from ..data.dataset import TrainingData
    from ..models.sd_model import SDModel

VALIDATION_SEED = 0  # without validation_seed: the same noise in every run, so runs compare


@dataclass(frozen=True)
class MeasurementPlan:
    validation: ValidationPass | None
    drift_words: tuple[str, ...]
    rule: OverfitRule

    def callback(self, train, model: SDModel, resolution: tuple[int, int]) -> Measurements:
        """The callback, with the base's drift reference and similarity probe taken from `model` (the base, now)."""
        from ..similarity.state_dicts import probe_state_dict

        v = train.validation
        plain = replace(model, unet=getattr(model.unet, "_orig_mod", model.unet))  # torch.compile'd: its module
        drift = None
        if self.drift_words:
            inputs = ProbeInputs.make(self.drift_words, (resolution[1] // 8, resolution[0] // 8))
            drift = DriftMeter.of_base(plain, inputs, train.model.clip_skip)
        probe = probe_state_dict(plain.unet.state_dict(), source=str(train.model.pretrained_model_name_or_path))
        return Measurements(Path(train.saving.output_dir), self.rule, self.validation, drift, probe,
                            v.validate_every_n_steps, v.validate_every_n_epochs, v.stop_on_overfit)


def plan_measurements(train, datasets: DatasetConfig, data: TrainingData, reg_words: WordList | None,
                      say: Callable[[str], None]) -> MeasurementPlan:
    """Check what the measurements need and say what they will be; `reg_words`: the regularization's word list.
    The validation noise is seeded by the first validation_seed given, else a constant."""
    v = train.validation
    held = data.validation_data()
    seed = next((d.validation_seed for d in datasets.datasets if d.validation_seed is not None), VALIDATION_SEED)
    validation = None if held is None else ValidationPass(held, seed, v.max_validation_steps)
    if validation is None and (v.validate_every_n_steps or v.validate_every_n_epochs):
        say("note: validate_every_n_* is set but no images are held out: set validation_split or validation_dir in "
            "the dataset config; the drift meter still runs.")
    if v.stop_on_overfit and validation is None and v.overfit_max_drift is None:
        raise UserError("stop_on_overfit = true needs a measure to stop on: hold out validation images "
                        "(validation_split or validation_dir in the dataset config) or set overfit_max_drift")
    words = _drift_words(train, data, reg_words, say) if v.drift_word_count else ()
    if v.overfit_max_drift is not None and not words:
        raise UserError("overfit_max_drift is set but the drift meter is off (drift_word_count = 0, or no words in "
                        "the training captions): set drift_words, or remove overfit_max_drift")
    rule = OverfitRule(v.overfit_tolerance, v.overfit_patience, v.overfit_max_drift)
    parts = [f"validation: {len(held.items)} held-out images, {len(validation.data.epoch_plan(0, 0))} batches"
             if validation else "validation: none (no held-out images)",
             f"drift meter: {len(words)} words ({', '.join(words[:8])}{', ...' if len(words) > 8 else ''})"
             if words else "drift meter: off", f"overfit rule: {rule.describe()}"]
    say("measurements: " + "; ".join(parts))
    return MeasurementPlan(validation, words, rule)


def _drift_words(train, data: TrainingData, reg_words: WordList | None, say) -> tuple[str, ...]:
    v, ds = train.validation, train.dataset
    if v.drift_words:
        words = load_word_list(v.drift_words, caption_extension=ds.caption_extension, separator=ds.caption_separator)
    elif reg_words is not None:
        words = reg_words
    else:
        excluded = trigger_words([item.subset.class_tokens for item in data.items if not item.subset.is_reg])
        try:
            words = words_from_texts([item.caption for item in data.items if not item.subset.is_reg],
                                     "the training captions", ds.caption_separator, exclude=excluded)
        except UserError:
            say("note: the drift meter is off: the training captions have no words (set drift_words).")
            return ()
    return tuple(words.words[:v.drift_word_count])
