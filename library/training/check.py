"""`train_certain.py --check`: everything a run checks before its first step, and nothing more: the options, the
dataset config and the data (folders, images, captions, buckets), the regularization's word list or folder, the
held-out images, a resume folder and the base model's file (its config from the header alone, no weights); then
the plan it would train, printed. It writes nothing, so a UI can call it on every edit (its Validate button).
"""

from __future__ import annotations

from ..config import LoadedConfig


def check_run(loaded: LoadedConfig, say=print) -> int:
    from ..models.sd_model import describe_checkpoint
    from ..regularization.setup import plan_regularization
    from ..validation.setup import plan_measurements
    from .model_setup import base_model_source, family_notes
    from .run import make_accelerator, resolve_run, scan_data

    train = loaded.train
    data = scan_data(loaded)
    config, notes = describe_checkpoint(base_model_source(train),
                                        v_parameterization=True if train.model.v_parameterization else None)
    notes += family_notes(train, config.family)
    say("\n".join(data.describe()))
    plan = resolve_run(train, loaded, data, make_accelerator(train), say)
    regularization = plan_regularization(train, data, say, is_main=False)  # is_main False: it writes nothing
    plan_measurements(train, loaded.datasets, data, regularization and regularization.word_list, say)
    images = (len(data.items), sum(item.repeats for item in data.items))
    say("\n".join(describe_plan(loaded, plan.settings, config, images) + [f"note: {n}" for n in notes]))
    say("check passed: nothing was trained or written.")
    return 0


def describe_plan(loaded: LoadedConfig, settings, config, images: tuple[int, int]) -> list[str]:
    """The resolved run in a few lines: its length, batch, seed, model, regularization share and saves.
    `images`: (images, samples an epoch with repeats)."""
    t = loaded.train
    epochs = -(-settings.max_steps // max(settings.steps_per_epoch, 1))
    batch = sorted({d.batch_size for d in loaded.datasets.datasets})
    reg = t.regularization
    share = {"none": "none", "prior": "prior preservation (class images in the dataset)"}.get(
        reg.reg_mode, f"{reg.reg_mode}: {reg.reg_batch} images" if reg.reg_batch else
        f"{reg.reg_mode}: {reg.reg_ratio:g} per training image")
    saves = [f"every {t.saving.save_every_n_epochs} epoch(s)" if t.saving.save_every_n_epochs else "",
             f"every {t.saving.save_every_n_steps} steps" if t.saving.save_every_n_steps else ""]
    return ["--- plan ---",
            f"model: {t.model.pretrained_model_name_or_path} ({config.name}, {config.family}, "
            f"{config.prediction_type}); no weights loaded",
            f"steps: {settings.max_steps} ({settings.steps_per_epoch} per epoch, {epochs} epoch(s)); "
            f"{images[0]} training image(s), {images[1]} samples an epoch with repeats",
            f"batch: {' / '.join(map(str, batch))} per device x {settings.grad_accum} accumulation step(s)",
            f"seed: {settings.seed}",
            f"regularization: {share}" + (f", every {reg.reg_every_n_steps} steps" if reg.reg_every_n_steps > 1
                                         and reg.reg_mode != "none" else ""),
            f"saves: {', '.join(s for s in saves if s) or 'the final model only'} to {t.saving.output_dir}",
            f"workflow: {t.workflow.workflow}",
            "time per step: not estimated here (the first steps' it/s and ETA are in the progress stream)"]
