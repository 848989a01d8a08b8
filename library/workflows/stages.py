"""What every workflow is made of: stages that are skipped when their outputs exist, training stages that resume
from their newest saved state, and `run.json`, the record of each stage's inputs, outputs and finish time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..atomic import atomic_write_text
from ..config import DatasetConfig, LoadedConfig, TrainConfig
from ..errors import UserError

if TYPE_CHECKING:
    from ..regularization.wordfreq import WordList

RUN_RECORD = "run.json"


@dataclass
class RunRecord:
    """`<run folder>/run.json`: the workflow, and each stage with its inputs and outputs once it is done."""

    folder: Path
    workflow: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, workflow: str) -> RunRecord:
        path = folder / RUN_RECORD
        if not path.is_file():
            return cls(folder, workflow)
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("workflow") != workflow:
            raise UserError(f"{path}: this folder holds a {saved.get('workflow')} run, not {workflow}; choose another "
                            f"output_dir")
        return cls(folder, workflow, {s["name"]: s for s in saved.get("stages", [])})

    def done(self, name: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Record a stage; one recorded before with the same inputs and outputs keeps its finish time."""
        entry = json.loads(json.dumps({"name": name, "inputs": inputs, "outputs": outputs}, default=str))
        earlier = self.stages.get(name, {})
        if {k: earlier.get(k) for k in entry} == entry:
            return
        self.stages[name] = {**entry, "finished": datetime.now().isoformat(timespec="seconds")}
        atomic_write_text(self.folder / RUN_RECORD, json.dumps(
            {"workflow": self.workflow, "stages": list(self.stages.values())}, indent=2, default=str) + "\n")


def stage_config(loaded: LoadedConfig, datasets: DatasetConfig, output_dir: Path, **changes: Any) -> LoadedConfig:
    """The run's config for one training stage: its own folder and data, states saved so it can resume, the
    workflow itself switched off, and the option `changes` (flat kohya names)."""
    flat = {**loaded.train.to_flat(), "output_dir": str(output_dir), "save_state": True, "workflow": "none",
            "resume": None, **changes}
    if loaded.train.certain.progress_jsonl:
        flat["progress_jsonl"] = str(output_dir / "progress.jsonl")
    return replace(loaded, train=TrainConfig.from_flat(flat), datasets=datasets)


def final_model(train: TrainConfig) -> Path:
    from ..training.saving import SavePolicy

    return SavePolicy.of(train.saving).model_path("final")


def train_stage(loaded: LoadedConfig, say: Callable[[str], None], **plug_ins: Any) -> Path:
    """Train as configured unless the final model is there already; an interrupted stage resumes from its newest
    state. `plug_ins`: run_training's streams and callbacks. Returns the final model's path."""
    from ..training.run import run_training
    from ..training.state import newest_state

    target = final_model(loaded.train)
    if target.exists():
        say(f"{target.parent.name}: done before ({target.name} exists), skipped.")
        return target
    folder = Path(loaded.train.saving.output_dir)
    state = newest_state(folder) if folder.is_dir() else None
    if state is not None:
        say(f"{folder.name}: resuming from {state.name}.")
        loaded = replace(loaded, train=TrainConfig.from_flat({**loaded.train.to_flat(), "resume": str(state)}))
    code = run_training(loaded, **plug_ins)
    if code != 0:
        raise StageStopped(code)
    return target


def write_words(words: WordList, path: Path) -> Path:
    """The word list as `word<TAB>count` lines, the form gen_reg_images.py --wordfreq reads."""
    atomic_write_text(path, "".join(f"{w}\t{c}\n" for w, c in zip(words.words, words.counts)))
    return path


def draw_word_images(model: Path, words: Path, folder: Path, count: int, train: TrainConfig,
                     resolution: tuple[int, int] | None) -> int:
    """`count` single-word images by `model` into `folder`: gen_reg_images.py's word-frequency mode with the
    `[regularization]` generation settings, resumable (a rerun, or a larger count, keeps what is done). Returns the
    folder's image count."""
    from ..generation.cli import main as generate

    reg = train.regularization
    width, height = reg.reg_resolution or resolution or (512, 512)
    seed = reg.reg_seed if reg.reg_seed is not None else train.training.seed or 0
    argv = ["txt2img", "--model", str(model), "--outdir", str(folder), "--wordfreq", str(words), "--count", str(count),
            "--width", str(width), "--height", str(height), "--steps", str(reg.reg_steps), "--sampler",
            reg.reg_sampler, "--cfg_scale", str(reg.reg_cfg_scale), "--seed", str(seed), "--clip_skip",
            str(train.model.clip_skip or 1), "--negative_prompt", reg.reg_negative_prompt, "--batch_size", "4"]
    if generate(argv) != 0:
        raise UserError(f"generating the single-word images of {model} into {folder} failed (see above)")
    return len(list(folder.glob("*.png")))


def measured_schedule(train: TrainConfig) -> dict[str, Any]:
    """Evaluate and save every epoch unless the run says when, so there are checkpoints to choose from."""
    v, s = train.validation, train.saving
    changes: dict[str, Any] = {}
    if not (v.validate_every_n_steps or v.validate_every_n_epochs):
        changes["validate_every_n_epochs"] = 1
    if not (s.save_every_n_steps or s.save_every_n_epochs or s.save_n_epoch_ratio):
        changes["save_every_n_epochs"] = 1
    return changes


def chosen_checkpoint(folder: Path) -> tuple[Path, str]:
    """The checkpoint a training stage's checkpoints.json chose (the last before overfitting), and why."""
    summary = json.loads((folder / "checkpoints.json").read_text(encoding="utf-8"))
    if summary["chosen"] is None:
        raise UserError(f"{folder / 'checkpoints.json'}: no checkpoint to use ({summary['reason']}); save more "
                        f"often (save_every_n_steps) or lower the learning rate")
    return folder / summary["chosen"]["path"], summary["chosen"]["reason"]


class StageStopped(Exception):
    """A training stage ended without finishing (Ctrl-C): the workflow stops there with its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
