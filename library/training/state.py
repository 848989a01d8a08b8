"""Resumable training state: everything needed so that a resumed run equals the uninterrupted one.

A state folder holds the trained modules' weights, the optimizer, LR scheduler and grad-scaler states,
every RNG (the trainer's noise generator per rank, torch, Python, numpy), the position in the data
(epoch, batch within the epoch, global step) and the states of extra streams and callbacks. It is built in
a temp folder and renamed into place (`atomic_folder`), so an interruption never leaves a half-written state.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_folder
from ..errors import UserError

FORMAT = 1
_FILES = ("progress.json", "optimizer.pt", "rng.pt")


@dataclass
class Progress:
    """Where the run is: `batch_in_epoch` counts main-stream plans of `epoch` already consumed."""

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # states of streams and callbacks, JSON-able


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": _numpy_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached  # tensors load weights-only


def save_state(folder: Path, *, progress: Progress, modules: dict[str, torch.nn.Module], optimizer, lr_scheduler,
               scaler, rng_per_rank: list[dict[str, Any]], fingerprint: str, seed: int) -> Path:
    """Write the state folder atomically (build beside it, then rename)."""
    from safetensors.torch import save_file

    with atomic_folder(folder) as build:
        for name, module in modules.items():
            save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(build / f"{name}.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None}, build / "optimizer.pt")
        torch.save(rng_per_rank, build / "rng.pt")
        info = {"format": FORMAT, "fingerprint": fingerprint, "seed": seed, "modules": sorted(modules),
                **asdict(progress)}
        (build / "progress.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder


@dataclass
class StateInfo:
    """A state folder's run without its tensors: enough to plan the resume before any model loads."""

    folder: Path
    progress: Progress
    fingerprint: str
    seed: int  # the data order depends on it: a resumed run must use the same one even when it was drawn
    rng_per_rank: list[dict[str, Any]]
    modules: list[str]  # the trained modules whose weights the folder holds


@dataclass
class LoadedState(StateInfo):
    weights: dict[str, dict[str, torch.Tensor]]
    optimizer: dict[str, Any]


def read_state_info(folder: str | Path) -> StateInfo:
    """Check the folder and read its progress and RNG states (kilobytes); the weights stay on disk."""
    folder = Path(folder)
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder}: not a training state folder (missing {', '.join(missing)}). Point `resume` at a "
                        f"`*-state` folder written with save_state.")
    info = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
    if info.get("format") != FORMAT:
        raise UserError(f"{folder}: state format {info.get('format')} is not supported by this version (expects {FORMAT}).")
    progress = Progress(info["global_step"], info["epoch"], info["batch_in_epoch"], info.get("extra", {}))
    return StateInfo(folder, progress, info["fingerprint"], info["seed"],
                     torch.load(folder / "rng.pt", map_location="cpu", weights_only=True), info["modules"])


def load_state(info: StateInfo) -> LoadedState:
    """The weights and optimizer state as well, for the moment they are restored."""
    from safetensors.torch import load_file

    weights = {name: load_file(str(info.folder / f"{name}.safetensors")) for name in info.modules}
    return LoadedState(**vars(info), weights=weights,
                       optimizer=torch.load(info.folder / "optimizer.pt", map_location="cpu", weights_only=True))


def newest_state(folder: Path) -> Path | None:
    """The state folder in `folder` with the most steps done, if any (a workflow's interrupted stage resumes there)."""
    found = [(json.loads((p / "progress.json").read_text(encoding="utf-8"))["global_step"], p.name, p)
             for p in folder.glob("*-state") if (p / "progress.json").is_file()]
    return max(found)[2] if found else None
