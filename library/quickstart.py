"""The embedded default job: a tiny SD model and the sample dataset, made on first use.

`train_certain.py --quickstart` runs on these, so a fresh machine can exercise the whole path (checkpoint
write, offline load, hashes, dataset layout) without downloading anything. configs/presets/quickstart.toml
names the files this writes.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DIR = Path("quickstart")


def prepare_quickstart(root: Path = DEFAULT_DIR, seed: int = 0) -> None:
    """Build what is missing under `root` (idempotent: a second call reuses the files)."""
    from .sample_data import write_sample_dataset
    from .tiny import write_tiny

    model = root / "model" / "tiny-sd1.safetensors"
    dataset = root / "dataset"
    if not model.is_file():
        write_tiny(model, "sd1", seed=seed)
    if not (dataset / "train").is_dir():
        write_sample_dataset(dataset, seed=seed)
