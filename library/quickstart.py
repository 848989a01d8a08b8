"""The embedded default job: the shipped tiny world base model and the sample dataset, made on first use.

`train_certain.py --quickstart` fine-tunes `models/tiny-world-sd1.safetensors` (a small SD1-layout model that
draws the world of `library.world`, made by `python -m library.world.pretrain`) on the sample dataset's `sks`
concept, so a fresh machine runs the whole path without downloading anything and every picture means something.
configs/presets/quickstart.toml names these files.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

DEFAULT_DIR = Path("quickstart")
BASE_MODEL = Path(__file__).resolve().parents[1] / "models" / "tiny-world-sd1.safetensors"


def prepare_quickstart(root: Path = DEFAULT_DIR, seed: int = 0) -> Path:
    """Write the sample dataset under `root` if it is missing (a second call reuses it); returns the base model."""
    from .sample_data import write_sample_dataset

    if not BASE_MODEL.is_file():
        raise UserError(f"the shipped base model {BASE_MODEL} is missing; restore it with `git checkout -- models` "
                        "or make it again with the command in the README (python -m library.world.pretrain).")
    dataset = root / "dataset"
    if not (dataset / "train").is_dir():
        write_sample_dataset(dataset, seed=seed)
    return BASE_MODEL
