"""Read only the probed tensors of a model on disk, and its A1111 short hash.

- `.safetensors`: `safe_open(...).get_tensor(key)` reads just the needed tensors.
- `.ckpt` / `.pt` / `.pth` / `.bin`: the project's safe unpickler, memory-mapped for zip-format files, so
  only the storages of the needed tensors are read.
- diffusers folders: `unet/diffusion_pytorch_model.*`, by diffusers key names; the family comes from the
  folder's configs.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..models.checkpoint_files import PICKLE_SUFFIXES, SINGLE_FILE_SUFFIXES, read_tensor_file, weights_file
from ..models.hashes import legacy_hash
from ..models.model_config import ModelConfig
from .blocks import Block
from .weights import AttentionWeights, pick_weights


def read_attention_weights(path: Path, blocks: tuple[Block, ...]) -> AttentionWeights:
    if path.is_dir():
        if not (path / "unet").is_dir():
            raise UserError(f"{path}: a folder but not a diffusers model (it has no unet/ subfolder). Pass a "
                            f".safetensors or .ckpt file, or a diffusers folder with model_index.json and unet/.")
        return pick_from_file(weights_file(path / "unet", "unet"), blocks, str(path),
                              ModelConfig.from_folder(path).family)
    if not path.is_file():
        raise UserError(f"{path}: file not found.")
    return pick_from_file(path, blocks, str(path))


def pick_from_file(path: Path, blocks: tuple[Block, ...], source: str, family: str | None = None) -> AttentionWeights:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                return pick_weights(f.keys(), f.get_tensor, blocks, source, family)
        except UserError:
            raise
        except Exception as e:  # safetensors has its own error types for truncated or foreign files
            raise UserError(f"{path}: not a readable .safetensors file ({e}). A partial download is the usual "
                            f"cause: check the file size against its source.") from None
    if suffix in PICKLE_SUFFIXES:
        tensors, _ = read_tensor_file(path)  # memory-mapped: tensors not picked are never read
        return pick_weights(tensors.keys(), tensors.__getitem__, blocks, source, family)
    raise UserError(f"{path}: unsupported file type `{path.suffix}`; expected one of "
                    f"{', '.join(SINGLE_FILE_SUFFIXES)} or a diffusers folder.")


def short_hash(path: Path) -> str:
    """A1111's old 8-hex "Model hash", as the reference prints it; for a diffusers folder, its UNet file's."""
    return legacy_hash(weights_file(path / "unet", "unet") if path.is_dir() else path)
