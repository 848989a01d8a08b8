"""Saved checkpoints: the trained weights with ModelSpec and kohya `ss_*` metadata."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig, dump_args_toml
from .loop import Trainer


def save_trained_model(trainer: Trainer, train: TrainConfig, path: Path, policy) -> None:
    from ..models.metadata import modelspec_metadata
    from ..models.sd_model import save_model

    model = trainer.model_for_sampling()
    stale = [k for k in model.extras if k.startswith("model_ema")]
    extras = {k: v for k, v in model.extras.items() if k not in stale}  # the EMA copy no longer matches
    resolution = train.dataset.resolution
    meta = modelspec_metadata(model.config, title=train.metadata.metadata_title or path.stem, resolution=resolution,
                              extra=training_metadata(trainer, train))
    save_model(replace(model, extras=extras), path, precision=policy.save_precision, metadata=meta)


def training_metadata(trainer: Trainer, train: TrainConfig) -> dict[str, Any]:
    """kohya's ss_* names where they exist (A1111 and Civitai show them), plus the full options echo."""
    m, t, o = train.metadata, train.training, train.optimizer
    meta: dict[str, Any] = {
        "ss_output_name": train.saving.output_name or "", "ss_steps": trainer.progress.global_step,
        "ss_epoch": trainer.progress.epoch, "ss_max_train_steps": trainer.settings.max_steps,
        "ss_seed": trainer.settings.seed, "ss_learning_rate": o.learning_rate,
        "ss_text_encoder_lr": o.learning_rate_te, "ss_optimizer": trainer.settings.optimizer_description,
        "ss_lr_scheduler": o.lr_scheduler,
        "ss_mixed_precision": t.mixed_precision, "ss_clip_skip": train.model.clip_skip,
        "ss_max_token_length": train.model.max_token_length, "ss_v2": trainer.model.family == "sd2",
        "ss_gradient_accumulation_steps": t.gradient_accumulation_steps, "ss_noise_offset": t.noise_offset,
        "ss_min_snr_gamma": t.min_snr_gamma, "ss_prior_loss_weight": t.prior_loss_weight, "ss_loss_type": t.loss_type,
        "ss_sd_model_name": Path(str(train.model.pretrained_model_name_or_path)).name,
        "ss_tag_frequency": trainer.data.tag_frequency,
        "certain.training_options": dump_args_toml(train),
    }
    for option in ("metadata_author", "metadata_description", "metadata_license", "metadata_tags",
                   "metadata_usage_hint", "metadata_merged_from", "metadata_trigger_phrase", "metadata_preprocessor",
                   "metadata_is_negative_embedding", "metadata_thumbnail"):
        value = getattr(m, option)
        if value:
            meta[option.replace("metadata_", "modelspec.", 1)] = value
    return {k: v for k, v in meta.items() if v is not None}
