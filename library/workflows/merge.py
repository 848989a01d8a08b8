"""Merge by training, the method's answer to merging models: instead of averaging the teachers' weights, the
student (the base model, trained on the own data) learns from single-word pictures the teachers draw, mixed into
every step at the teachers' shares (`teacher_mix.py`), and the checkpoint kept is the last before overfitting.
Stages, in `<output_dir>`:

1. `words.txt`, `pools/<i>-<name>/`: the words the teachers draw from (`workflow_word_list`, else reg_word_list,
   else the training captions; trigger words kept: a teacher's concept is what is merged) and each teacher's
   pictures (gen_reg_images.py's word-frequency mode), made before the first epoch and grown before each later one;
2. `student/`: the training, measured like any run (checkpoints.json, report.png) and stopped at overfitting when
   images are held out;
3. `weight_merge.safetensors`: the plain weighted merge of the teachers, for comparison;
4. `merge.json`, `merge.md`: every student checkpoint and the weight merge by behaviour distance (the drift
   meter's measure) and by weight similarity to the base and to each teacher.

A stage whose outputs exist is skipped, and the training resumes from its newest state, so running the same command
again finishes the merge.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write_text
from ..config import LoadedConfig, TrainConfig
from ..errors import UserError
from ..regularization.manifest import MANIFEST
from .stages import (RunRecord, chosen_checkpoint, draw_word_images, final_model, measured_schedule, stage_config,
                     train_stage, write_words)
from .teacher_mix import Pool, TeacherEpochs, TeacherMix, merge_coordinates

PROBE_WORDS = 16  # words of the behaviour distances, when drift_word_count is 0


def run_merge(loaded: LoadedConfig, say: Callable[[str], None]) -> int:
    from ..data.dataset import build_training_data
    from ..regularization.setup import regularization_word_list
    from ..training.run import first_training_dataset

    train, wf = loaded.train, loaded.train.workflow
    out = Path(train.saving.output_dir)
    if loaded.datasets is None:
        raise UserError("workflow = \"merge\" needs training data (dataset_config or train_data_dir): the teachers' "
                        "pictures are added to it")
    teachers = [Path(t) for t in wf.workflow_teachers]
    weights = merge_weights(teachers, wf.workflow_weights)
    if wf.workflow_teacher_share <= 0:
        raise UserError("workflow_teacher_share is 0: the student would see no teacher picture; give how many per "
                        "own training picture, e.g. 1.0")
    check_same_kind(Path(train.model.pretrained_model_name_or_path), teachers)
    data = build_training_data(loaded.datasets, train)
    reg = replace(train.regularization, reg_word_list=wf.workflow_word_list or train.regularization.reg_word_list
                  or "captions", reg_keep_trigger_words=True)
    words = regularization_word_list(reg, data, train.dataset.caption_separator, train.dataset.caption_extension)
    probe_words = tuple(words.words[:train.validation.drift_word_count or PROBE_WORDS])
    record = RunRecord.open(out, "merge")
    out.mkdir(parents=True, exist_ok=True)
    words_file = write_words(words, out / "words.txt")
    first = first_training_dataset(loaded)
    size = train.regularization.reg_resolution or first.resolution or (512, 512)
    folders = [out / "pools" / f"{i}-{t.stem}" for i, t in enumerate(teachers)]
    held_out = data.validation_data() is not None
    if not held_out:
        say("merge: no images held out (validation_split or validation_dir), so overfitting cannot be seen: the "
            "student trains to the end and its last checkpoint is the result")
    student = stage_config(loaded, loaded.datasets, out / "student", output_name="student",
                           stop_on_overfit=held_out or train.validation.stop_on_overfit, save_last_n_epochs=None,
                           save_last_n_steps=None, save_last_n_epochs_state=1, save_last_n_steps_state=1,
                           **measured_schedule(train))
    plug_ins = {}
    if not final_model(student.train).exists():  # else the stage is skipped: no teacher need be loaded
        mix = teacher_mix(train, teachers, weights, folders, words_file, probe_words, size, first.batch_size)
        plug_ins = {"streams": [mix], "callbacks": [TeacherEpochs(mix)]}
    final = train_stage(student, say, **plug_ins)
    chosen, why = chosen_checkpoint(out / "student")
    say(f"merge: chose {chosen.name} ({why})")
    record.done("student", {"teachers": [str(t) for t in teachers], "weights": weights, "ratio": wf.workflow_ratio,
                            "words": str(words_file)},
                {"folder": str(out / "student"), "final": str(final), "chosen": str(chosen), "why": why,
                 "pools": [str(f) for f in folders]})

    merged = out / "weight_merge.safetensors"
    if not merged.is_file():
        weight_merge(teachers, weights, merged)
    record.done("weight_merge", {"teachers": [str(t) for t in teachers], "weights": weights}, {"model": str(merged)})

    summary = json.loads((out / "student" / "checkpoints.json").read_text(encoding="utf-8"))
    candidates = [out / "student" / c["path"] for c in summary["checkpoints"]] + [merged]
    if not (out / "merge.md").is_file():  # written last
        table = compare_to_references(Path(train.model.pretrained_model_name_or_path), teachers, candidates,
                                      probe_words, size, train.model.clip_skip)
        table["chosen"], table["weights"] = chosen.name, weights
        atomic_write_text(out / "merge.json", json.dumps(table, indent=2) + "\n")
        atomic_write_text(out / "merge.md", merge_markdown(table))
        record.done("report", {"models": [str(c) for c in candidates]},
                    {"json": str(out / "merge.json"), "markdown": str(out / "merge.md")})
    say((out / "merge.md").read_text(encoding="utf-8"))
    say(f"merge: done; the merged model is {chosen}")
    return 0


def teacher_mix(train: TrainConfig, teachers: list[Path], weights: list[float], folders: list[Path], words_file: Path,
                probe_words: tuple[str, ...], size: tuple[int, int], batch_size: int) -> TeacherMix:
    """The stream of the teachers' pictures, its pools as the folders hold them (grown by `draw_word_images`)."""
    from ..regularization.pregenerated import read_reg_folder

    wf = train.workflow

    def grow(teacher: int, count: int):
        draw_word_images(teachers[teacher], words_file, folders[teacher], count, train, size)
        return read_reg_folder(folders[teacher])[0]

    return TeacherMix(
        teachers=[str(t) for t in teachers],
        pools=[Pool(read_reg_folder(f)[0] if (f / MANIFEST).is_file() else []) for f in folders],
        weights=weights, ratios=list(weights), share=wf.workflow_teacher_share, max_reuse=wf.workflow_max_reuse,
        per_step=batch_size * train.training.gradient_accumulation_steps, batch_size=batch_size, size=size,
        seed=train.training.seed or 0, grow=grow, meters=teacher_meters(teachers, probe_words, size, train),
        auto=wf.workflow_ratio == "auto")


def merge_weights(teachers: list[Path], given: tuple[float, ...]) -> list[float]:
    """The teachers' weights, normalized to sum 1 (equal when none are given), once the teachers are found."""
    if len(teachers) < 2:
        raise UserError(f"workflow = \"merge\" needs two or more workflow_teachers (model files), got {len(teachers)}")
    missing = [str(t) for t in teachers if not t.exists()]
    if missing:
        raise UserError(f"workflow_teachers: not found: {', '.join(missing)}")
    weights = list(given) or [1.0] * len(teachers)
    if len(weights) != len(teachers) or min(weights) < 0 or sum(weights) <= 0:
        raise UserError(f"workflow_weights {list(given)}: give one weight per teacher ({len(teachers)}), none "
                        f"negative, not all 0")
    return [w / sum(weights) for w in weights]


def check_same_kind(base: Path, teachers: list[Path]) -> None:
    """Teachers of another model kind than the base (SD1 against SD2, another size) cannot be weight-merged or
    measured against it: say so before any training, from the files' headers."""
    from ..models.sd_model import describe_checkpoint

    def kind(path: Path) -> str:
        family, channels, width, context = describe_checkpoint(path)[0].fingerprint
        return f"{family}, {channels} input channels, width {width}, context {context}"

    kinds = {path: kind(path) for path in [base, *teachers]}
    others = [f"{p} ({k})" for p, k in kinds.items() if k != kinds[base]]
    if others:
        raise UserError(f"workflow_teachers must be of the base's kind ({base}: {kinds[base]}); not: "
                        + ", ".join(others))


def teacher_meters(teachers: list[Path], words: tuple[str, ...], size: tuple[int, int], train):
    """Each teacher's predictions on the probe words, made once (a teacher is loaded, measured and let go)."""
    from ..models.sd_model import load_model
    from ..similarity.behaviour import ProbeInputs
    from ..validation.measurements import DriftMeter

    inputs = ProbeInputs.make(words, (size[1] // 8, size[0] // 8))
    return [DriftMeter.of_base(load_model(t), inputs, train.model.clip_skip) for t in teachers]


def weight_merge(teachers: list[Path], weights: list[float], out: Path) -> Path:
    """The weighted sum of the teachers' weights (what a checkpoint merger does), saved like the first teacher."""
    from ..models.sd_model import load_model, save_model

    merged = load_model(teachers[0])
    parts = ("unet", "text_encoder", "vae")
    sums = {part: {k: v.float() * weights[0] for k, v in getattr(merged, part).state_dict().items()} for part in parts}
    for teacher, weight in zip(teachers[1:], weights[1:]):
        other = load_model(teacher)
        for part in parts:
            for key, value in getattr(other, part).state_dict().items():
                sums[part][key] += value.float() * weight
    for part in parts:
        module = getattr(merged, part)
        module.load_state_dict({k: v.to(module.state_dict()[k].dtype) for k, v in sums[part].items()})
    return save_model(merged, out)


def compare_to_references(base: Path, teachers: list[Path], models: list[Path], words: tuple[str, ...],
                          size: tuple[int, int], clip_skip: int | None) -> dict:
    """Each model's behaviour distance and weight similarity to the base and to each teacher, and its coordinates
    among the teachers (`merge_coordinates`)."""
    from ..models.sd_model import load_model
    from ..similarity.behaviour import ProbeInputs, drift_of, predictions
    from ..similarity.compare import compare_files

    references = [base, *teachers]
    inputs = ProbeInputs.make(words, (size[1] // 8, size[0] // 8))
    made = {str(p): predictions(load_model(p), inputs, clip_skip) for p in [*references, *models]}
    similarity = compare_files(references[0], [*references[1:], *models], matrix=True).matrix
    rows = []
    for index, path in enumerate(models, start=len(references)):
        rows.append({"model": path.name,
                     "distance": [drift_of(inputs, made[str(r)], made[str(path)]).mean for r in references],
                     "coordinates": merge_coordinates(made[str(path)], [made[str(t)] for t in teachers]),
                     "similarity": [similarity[k][index] for k in range(len(references))]})
    return {"references": [p.name for p in references], "words": list(words), "models": rows}


def merge_markdown(table: dict) -> str:
    """merge.md: one row per model, behaviour distance (lower is closer) and similarity (higher) per reference."""
    names = table["references"]
    head = ["model", "coordinates among the teachers", *(f"distance to {n}" for n in names),
            *(f"similarity to {n}" for n in names)]
    weights = ", ".join(f"{w:.2f}" for w in table["weights"])
    lines = ["# Merge by training", "", f"Where each model's behaviour lies among the teachers' (the weights of the "
             f"mix of their predictions nearest its own; for teachers near each other a weight merge lies at its "
             f"weights), behaviour distance over {len(table['words'])} words (the drift meter's measure: 0 = the same "
             f"predictions) and weight similarity (%), for each student checkpoint (chosen: **{table['chosen']}**) "
             f"and the weight merge (weights {weights}).",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["models"]:
        name = f"**{row['model']}**" if row["model"] == table["chosen"] else row["model"]
        lines.append("| " + " | ".join([name, " / ".join(f"{c:.2f}" for c in row["coordinates"]),
                                        *(f"{d:.4f}" for d in row["distance"]),
                                        *(f"{s:.2f}" for s in row["similarity"])]) + " |")
    return "\n".join(lines) + "\n"
