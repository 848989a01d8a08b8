"""What the Runs tab shows, without gradio: the runs under the output folder, newest first, and for one its report
(`report.md` and `report.png`, which the trainer rewrites at every save), a workflow's `merge.md`, and the TOML it
was started with, to copy into a new run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from .fields import FOLDER_NAME
from .settings import UiSettings

MARKS = ("checkpoints.json", "progress.jsonl", "ui_config.toml", "run.json")  # what makes a folder a run


def list_runs(settings: UiSettings) -> list[str]:
    """The runs' folder names, most recently changed first."""
    if not settings.output.is_dir():
        return []
    runs = [folder for folder in settings.output.iterdir()
            if folder.is_dir() and not folder.name.startswith(".") and any((folder / m).exists() for m in MARKS)]
    return [folder.name for folder in sorted(runs, key=_changed, reverse=True)]


def run_details(settings: UiSettings, name: str) -> tuple[str, str | None, str]:
    """(the report as Markdown, the report plot, the run's TOML) of run `name`."""
    if not FOLDER_NAME.match(name or "") or not (settings.output / name).is_dir():  # a name, never `..` or a path
        return "choose a run", None, ""
    folder = settings.output / name
    texts = [(folder / f).read_text(encoding="utf-8") for f in ("report.md", "merge.md") if (folder / f).is_file()]
    report = "\n\n".join(texts) or "no report yet: it is written at the first save that has measurements"
    plot = folder / "report.png"
    return report, (str(plot) if plot.is_file() else None), run_toml(folder)


def run_toml(folder: Path) -> str:
    """The TOML the run was started with from the tab, else the options the trainer wrote into its newest checkpoint
    (`certain.training_options` in the safetensors header: a run started from the command line has it too)."""
    config = folder / "ui_config.toml"
    if config.is_file():
        return config.read_text(encoding="utf-8")
    for checkpoint in sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True):
        options = safetensors_metadata(checkpoint).get("certain.training_options")
        if options:
            return f"# the options of {checkpoint.name} (those that differ from the defaults)\n{options}"
    return ""


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, read from its header alone (no tensor, no toolkit import)."""
    try:
        with open(path, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(size)) if size < 100_000_000 else {}
    except (OSError, struct.error, ValueError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _changed(folder: Path) -> float:
    return max((folder / m).stat().st_mtime for m in MARKS if (folder / m).exists())
