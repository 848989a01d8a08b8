"""The to_q / to_k / to_v weights of the probed blocks, picked out of any tensor source and promoted to fp32.

A source is a set of key names plus a getter, so a lazily opened file and an in-memory state dict (LDM keys,
or the diffusers UNet's own `down_blocks...` keys as `unet.state_dict()` has them) go through one path and
only the needed tensors are ever read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Mapping

import torch

from ..errors import UserError
from ..models.text_keys import SD2_PREFIX
from .blocks import Block

SD1_TEXT = "cond_stage_model.transformer."  # with or without the `text_model.` level some files omit
QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class AttentionWeights:
    """One model's probed weights: fp32 CPU (q, k, v) per block name, in block order."""

    source: str
    family: str | None  # "sd1" / "sd2" from the text-encoder keys; None when the source has none
    blocks: tuple[Block, ...]
    qkv: dict[str, QKV]


def family_of(keys: Collection[str]) -> str | None:
    if any(k.startswith(SD2_PREFIX) for k in keys):
        return "sd2"
    return "sd1" if any(k.startswith(SD1_TEXT) for k in keys) else None


def pick_weights(keys: Collection[str], get: Callable[[str], torch.Tensor], blocks: tuple[Block, ...],
                 source: str, family: str | None = None) -> AttentionWeights:
    """The blocks' weights by LDM names, else by diffusers names; fp32, as the reference's nn.Linear copy makes them."""
    keys = set(keys)
    layout = next((f for f in (Block.ldm_keys, Block.diffusers_keys) if all(set(f(b)) <= keys for b in blocks)), None)
    if layout is None:
        raise UserError(_missing_message(keys, blocks, source))
    qkv = {}
    for block in blocks:
        q, k, v = (get(key).detach().to("cpu", torch.float32) for key in layout(block))
        if q.ndim != 2 or q.shape[0] != q.shape[1] or not q.shape == k.shape == v.shape:
            raise UserError(f"{source}: block {block.name} has to_q/to_k/to_v of shapes {list(q.shape)}, "
                            f"{list(k.shape)}, {list(v.shape)}; the calculator needs equal square matrices "
                            f"as in SD1/SD2 UNets.")
        qkv[block.name] = (q, k, v)
    return AttentionWeights(source, family if family is not None else family_of(keys), blocks, qkv)


def weights_of_state_dict(state: Mapping[str, torch.Tensor], blocks: tuple[Block, ...],
                          source: str = "state dict") -> AttentionWeights:
    return pick_weights(state.keys(), state.__getitem__, blocks, source)


def _missing_message(keys: set[str], blocks: tuple[Block, ...], source: str) -> str:
    diffusers_like = any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in keys)
    wanted = [k for b in blocks for k in (b.diffusers_keys() if diffusers_like else b.ldm_keys())]
    missing = [k for k in wanted if k not in keys]
    hint = ""
    if any(k.startswith(("lora_", "lora_unet", "lora_te")) or ".lora_" in k for k in keys):
        hint = " It looks like a LoRA file; compare full checkpoints."
    elif any(k.startswith(("encoder.", "decoder.", "first_stage_model.")) for k in keys) and \
            not any(k.startswith("model.diffusion_model.") for k in keys):
        hint = " It looks like a VAE file; compare full checkpoints."
    return (f"{source}: not a Stable Diffusion UNet checkpoint: {len(missing)} of the {len(wanted)} attention "
            f"weights the calculator reads are missing, e.g. {', '.join(missing[:2])}.{hint} "
            f"Supported: SD1/SD2 checkpoints (.safetensors, .ckpt) and diffusers folders.")
