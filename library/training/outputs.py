"""Saved checkpoints: the trained weights with ModelSpec and kohya `ss_*` metadata."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig, dump_args_toml
from ..plugins import LoopContext

if TYPE_CHECKING:
    from ..models.sd_model import SDModel


@dataclass(frozen=True)
class TrainedModelWriter:
    """Writes the model being trained with the run's metadata: what the run fixed at its start (`run_metadata`:
    seed, length, optimizer, tag frequency), plus the step and epoch it has reached."""

    train: TrainConfig
    run_metadata: dict[str, Any]

    def __call__(self, model: SDModel, path: Path, ctx: LoopContext) -> None:
        from ..models.metadata import modelspec_metadata
        from ..models.sd_model import save_model

        stale = [k for k in model.extras if k.startswith("model_ema")]
        extras = {k: v for k, v in model.extras.items() if k not in stale}  # the EMA copy no longer matches
        meta = modelspec_metadata(model.config, title=self.train.metadata.metadata_title or path.stem,
                                  resolution=self.train.dataset.resolution,
                                  extra=training_metadata(self.train, self.run_metadata, ctx.global_step, ctx.epoch))
        # Unset save_precision keeps the training dtype (as kohya), not the dtypes the base file was read in.
        save_model(replace(model, extras=extras, read_dtypes={}), path, precision=self.train.saving.save_precision,
                   metadata=meta)


def training_metadata(train: TrainConfig, run_metadata: dict[str, Any], step: int, epoch: int) -> dict[str, Any]:
    """kohya's ss_* names where they exist (A1111 and Civitai show them), plus the full options echo."""
    m, t, o = train.metadata, train.training, train.optimizer
    meta: dict[str, Any] = {
        "ss_output_name": train.saving.output_name or "", "ss_steps": step, "ss_epoch": epoch, **run_metadata,
        "ss_learning_rate": o.learning_rate, "ss_text_encoder_lr": o.learning_rate_te, "ss_lr_scheduler": o.lr_scheduler,
        "ss_mixed_precision": t.mixed_precision, "ss_clip_skip": train.model.clip_skip,
        "ss_max_token_length": train.model.max_token_length,
        "ss_gradient_accumulation_steps": t.gradient_accumulation_steps, "ss_noise_offset": t.noise_offset,
        "ss_min_snr_gamma": t.min_snr_gamma, "ss_prior_loss_weight": t.prior_loss_weight, "ss_loss_type": t.loss_type,
        "ss_sd_model_name": Path(str(train.model.pretrained_model_name_or_path)).name,
        "certain.training_options": dump_args_toml(train),
    }
    for option in ("metadata_author", "metadata_description", "metadata_license", "metadata_tags",
                   "metadata_usage_hint", "metadata_merged_from", "metadata_trigger_phrase", "metadata_preprocessor",
                   "metadata_is_negative_embedding", "metadata_thumbnail"):
        value = getattr(m, option)
        if value:
            meta[option.replace("metadata_", "modelspec.", 1)] = value
    return {k: v for k, v in meta.items() if v is not None}
