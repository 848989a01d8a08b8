"""Reading and writing raw tensors: single files (.safetensors, pickled .ckpt) and diffusers folders.

Nothing here knows about UNets or key layouts; `sd_model` does the mapping. Pickles go through the
restricted loader in `safe_pickle`. Every write is atomic: a file goes to a temp name and is renamed, a
folder is built beside the target and swapped in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from ..atomic import atomic_folder, atomic_path
from ..errors import UserError
from .model_config import CONFIG_FILES
from .safe_pickle import load_checkpoint_pickle

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SINGLE_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
EXTRAS_FILE = "ldm_extras.safetensors"
_WEIGHT_FILES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
             "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
            "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin"),
}


def read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of one file plus its safetensors metadata ({} for pickles)."""
    if not path.is_file():
        raise UserError(f"{path}: file not found.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise UserError(f"{path}: not a readable .safetensors file ({e}). A partial download is the "
                            f"usual cause: check the file size against its source.") from None
    if suffix in PICKLE_SUFFIXES:
        return _tensors_of(load_checkpoint_pickle(path)), {}
    raise UserError(f"{path}: unsupported file type `{path.suffix}`; expected one of "
                    f"{', '.join(SINGLE_FILE_SUFFIXES)} or a diffusers folder.")


def read_tensor_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The tensors' shapes and the metadata of one file; a .safetensors file's from its header alone (a pickle
    must be read whole, safely)."""
    if path.is_file() and path.suffix.lower() == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as e:
            raise UserError(f"{path}: not a readable .safetensors file ({e}). A partial download is the "
                            f"usual cause: check the file size against its source.") from None
    tensors, metadata = read_tensor_file(path)
    return {k: tuple(v.shape) for k, v in tensors.items()}, metadata


def _tensors_of(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Unwrap `{"state_dict": ...}` as Lightning and kohya write it; keep only tensors."""
    inner = checkpoint.get("state_dict")
    state = inner if isinstance(inner, Mapping) else checkpoint
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def write_tensor_file(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".safetensors":
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=dict(metadata))
        elif suffix in PICKLE_SUFFIXES:
            torch.save({"state_dict": dict(tensors)}, tmp)
        else:
            raise UserError(f"{path}: cannot save as `{path.suffix}`; use .safetensors (recommended) or .ckpt.")


def read_diffusers_folder(folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor], dict[str, str]]:
    """Module state dicts of unet/vae/text_encoder, plus LDM extras and metadata we stored beside them."""
    states = {part: read_tensor_file(weights_file(folder / part, part))[0] for part in _WEIGHT_FILES}
    extras, metadata = ({}, {})
    if (folder / EXTRAS_FILE).is_file():
        extras, metadata = read_tensor_file(folder / EXTRAS_FILE)
    return states, extras, metadata


def weights_file(folder: Path, part: str) -> Path:
    """The weights file of one diffusers component folder (safetensors first, then fp16, then pickles)."""
    names = _WEIGHT_FILES[part]
    found = next((folder / n for n in names if (folder / n).is_file()), None)
    if found is None:
        raise UserError(f"{folder}: no {part} weights (looked for {', '.join(names)}). Sharded or hub-only "
                        f"folders are not supported; save the model as one file first.")
    return found


def write_diffusers_folder(folder: Path, configs: Mapping[str, dict], states: Mapping[str, Mapping[str, torch.Tensor]],
                           extras: Mapping[str, torch.Tensor], metadata: Mapping[str, str], family: str) -> None:
    """A standard diffusers pipeline folder; LDM-only tensors and metadata go to `ldm_extras.safetensors`."""
    from safetensors.torch import save_file

    from ..text.tokenizer import save_tokenizer

    with atomic_folder(folder) as build:
        for part, config in configs.items():
            (build / part).mkdir()
            (build / CONFIG_FILES[part]).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for part, state in states.items():
            save_file({k: v.contiguous() for k, v in state.items()}, str(build / part / _WEIGHT_FILES[part][0]))
        save_file({k: v.contiguous() for k, v in extras.items()}, str(build / EXTRAS_FILE), metadata=dict(metadata))
        save_tokenizer(family, build / "tokenizer")
        (build / "model_index.json").write_text(json.dumps(_model_index(configs), indent=2) + "\n", encoding="utf-8")


def _model_index(configs: Mapping[str, dict]) -> dict:
    return {
        "_class_name": "StableDiffusionPipeline",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", configs["scheduler"].get("_class_name", "DDIMScheduler")],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
