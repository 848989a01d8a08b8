"""The anti-overfit rebuild, the method's answer to a subset that makes a model overfit. Stages, in `<output_dir>`:

1. `probe/`: train on the suspect subset alone, measuring images of it held out, until the overfit rule fires
   (`stop_on_overfit`); its checkpoints.json names the last checkpoint before overfitting.
2. `images/`: single-word images that checkpoint draws by word frequency (gen_reg_images.py's word-frequency
   mode, with the `[regularization]` generation settings), the subset's image count × `workflow_factor`.
3. `dataset.toml`: the dataset config with the subset replaced by those images.
4. `retrain/`: training from the base model on that dataset, with every other option as given.

A stage whose outputs exist is skipped, an interrupted training stage resumes from its newest state, and
`run.json` records each stage's inputs and outputs, so running the same command again finishes the rebuild.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write_text
from ..config import DatasetConfig, LoadedConfig, SubsetSpec, dump_dataset_toml
from ..config.suggest import did_you_mean
from ..errors import UserError
from .stages import (RunRecord, chosen_checkpoint, draw_word_images, measured_schedule, stage_config, train_stage,
                     write_words)

PROBE_SPLIT = 0.25  # held out of the suspect subset when its dataset holds nothing out


def run_anti_overfit(loaded: LoadedConfig, say: Callable[[str], None]) -> int:
    from ..data.dataset import build_training_data
    from ..regularization.setup import regularization_word_list

    train = loaded.train
    out = Path(train.saving.output_dir)
    suspect, dataset_index = find_subset(loaded.datasets, train.workflow.workflow_subset)
    data = build_training_data(loaded.datasets, train)
    images = sorted({str(i.path) for i in [*data.items, *data.held_out] if i.subset.image_dir == suspect.image_dir})
    if len(images) < 2:
        raise UserError(f"workflow_subset `{suspect.image_dir}`: {len(images)} usable image(s); the probe needs at "
                        f"least 2 (some to train, some held out to see the overfitting)")
    count = math.ceil(len(images) * train.workflow.workflow_factor)
    if count < 1:
        raise UserError(f"workflow_factor {train.workflow.workflow_factor} gives no images to replace the subset with")
    reg = replace(train.regularization, reg_word_list=train.workflow.workflow_word_list or
                  train.regularization.reg_word_list or "captions")
    words = regularization_word_list(reg, data, train.dataset.caption_separator, train.dataset.caption_extension)
    record = RunRecord.open(out, "anti_overfit")
    out.mkdir(parents=True, exist_ok=True)

    probe_data = probe_datasets(loaded.datasets, dataset_index, suspect, say)
    held = len(build_training_data(probe_data, train).held_out)
    if not held:
        raise UserError(f"the probe holds out none of the {len(images)} images of `{suspect.image_dir}`, so it cannot "
                        f"see the overfitting: give the subset at least 4 images, a larger validation_split, or a "
                        f"validation_dir")
    # every checkpoint is kept (the chosen one must still exist), only the newest state (to resume)
    probe = stage_config(loaded, probe_data, out / "probe", output_name="probe", stop_on_overfit=True,
                         reg_mode="none", save_last_n_epochs=None, save_last_n_steps=None,
                         save_last_n_epochs_state=1, save_last_n_steps_state=1, **measured_schedule(train))
    probe_model = train_stage(probe, say)
    chosen, reason = chosen_checkpoint(out / "probe")
    say(f"probe: chose {chosen.name} ({reason})")
    record.done("probe", {"subset": suspect.image_dir, "images": len(images), "dataset": probe_data.source},
                {"folder": str(out / "probe"), "final": str(probe_model), "chosen": str(chosen), "why": reason})

    words_file = write_words(words, out / "words.txt")
    spec = loaded.datasets.datasets[dataset_index]
    generated = draw_word_images(chosen, words_file, out / "images", count, train, spec.resolution)
    record.done("images", {"model": str(chosen), "words": str(words_file), "word_source": words.source,
                           "count": count}, {"folder": str(out / "images"), "images": generated})

    rebuilt = replace_subset(loaded.datasets, dataset_index, suspect, out / "images")
    config_file = out / "dataset.toml"
    atomic_write_text(config_file, dump_dataset_toml(rebuilt))
    record.done("dataset", {"original": loaded.datasets.source, "replaced": suspect.image_dir},
                {"dataset_config": str(config_file)})

    retrain = stage_config(loaded, _reload(config_file, train), out / "retrain")
    final = train_stage(retrain, say)
    record.done("retrain", {"base": train.model.pretrained_model_name_or_path, "dataset_config": str(config_file)},
                {"folder": str(out / "retrain"), "final": str(final)})
    say(f"anti_overfit: done; the rebuilt model is {final}")
    return 0


def find_subset(datasets: DatasetConfig | None, given: str | None) -> tuple[SubsetSpec, int]:
    """The subset whose image_dir is `given` (compared as resolved paths), and its dataset's index."""
    if datasets is None:
        raise UserError("workflow = \"anti_overfit\" needs training data (dataset_config or train_data_dir)")
    folders = [(s, i) for i, d in enumerate(datasets.datasets) for s in d.subsets if s.image_dir and not s.is_reg]
    if not given:
        raise UserError("workflow = \"anti_overfit\" needs workflow_subset: the image_dir of the subset suspected of "
                        "the overfitting, one of: " + ", ".join(s.image_dir for s, _ in folders))
    for subset, index in folders:
        if Path(subset.image_dir).resolve() == Path(given).resolve():
            return subset, index
    names = [s.image_dir for s, _ in folders]
    close = did_you_mean(given, names, cutoff=0.5)
    raise UserError(f"workflow_subset `{given}` is none of the dataset's training subsets ({', '.join(names)})"
                    + (f"; did you mean `{close}`?" if close else ""))


def probe_datasets(datasets: DatasetConfig, index: int, suspect: SubsetSpec, say) -> DatasetConfig:
    """The suspect subset alone, in its dataset's settings; part of it held out when nothing else is."""
    spec = datasets.datasets[index]
    if not spec.validation_split and not spec.validation_dir:
        say(f"probe: holding out {PROBE_SPLIT:.0%} of {suspect.image_dir} to see when it overfits (set "
            f"validation_split or validation_dir to choose)")
        spec = replace(spec, validation_split=PROBE_SPLIT)
    return DatasetConfig((replace(spec, subsets=(suspect,)),), f"{datasets.source} (the suspect subset only)")


def replace_subset(datasets: DatasetConfig, index: int, suspect: SubsetSpec, folder: Path) -> DatasetConfig:
    """The dataset config with `suspect` replaced by the generated images (captioned with their word)."""
    generated = replace(suspect, image_dir=str(folder), caption_extension=".txt", class_tokens=None, keep_tokens=0)
    specs = list(datasets.datasets)
    specs[index] = replace(specs[index], subsets=tuple(generated if s is suspect else s for s in specs[index].subsets))
    return DatasetConfig(tuple(specs), datasets.source)


def _reload(config_file: Path, train) -> DatasetConfig:
    """The written dataset config, read back as any user's file would be: what is trained is what the file says."""
    from ..config.dataset_config import load_dataset_config

    datasets, _ = load_dataset_config(config_file, train)
    return datasets
