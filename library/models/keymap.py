"""Name-and-shape rules between the LDM (single-file) layout and diffusers/transformers modules.

A rule says which LDM tensor corresponds to which module tensor(s) and how the data moves:
`same` copies the tensor object (so a load/save round trip is bit-exact), `conv1x1` adds or drops the two
trailing 1x1 dimensions (LDM VAE attention is stored as 1x1 convs), `qkv` splits OpenCLIP's stacked
`in_proj` into q, k, v along dim 0 (and concatenates them back). Rules are derived from a module's own
state-dict keys by the per-part functions in `unet_keys`, `vae_keys` and `text_keys`, so one table serves
both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

if TYPE_CHECKING:  # torch only where tensors move, so detection and key listing stay light
    import torch

Kind = Literal["same", "conv1x1", "qkv"]


@dataclass(frozen=True)
class KeyRule:
    ldm: str
    module: tuple[str, ...]
    kind: Kind = "same"


def to_module(ldm: Mapping[str, "torch.Tensor"], rules: list[KeyRule]) -> dict[str, "torch.Tensor"]:
    """LDM tensors -> module state dict. Every rule's LDM key must be present (checked by the caller)."""
    out: dict[str, "torch.Tensor"] = {}
    for rule in rules:
        tensor = ldm[rule.ldm]
        if rule.kind == "same":
            out[rule.module[0]] = tensor
        elif rule.kind == "conv1x1":
            out[rule.module[0]] = tensor.reshape(tensor.shape[0], tensor.shape[1]) if tensor.ndim == 4 else tensor
        else:
            # clone: q, k and v become independent parameters (shared storage would break saving)
            for name, part in zip(rule.module, tensor.chunk(len(rule.module), dim=0)):
                out[name] = part.clone()
    return out


def to_ldm(module_state: Mapping[str, "torch.Tensor"], rules: list[KeyRule]) -> dict[str, "torch.Tensor"]:
    """Module state dict -> LDM tensors (the inverse of `to_module`)."""
    out: dict[str, "torch.Tensor"] = {}
    for rule in rules:
        if rule.kind == "same":
            out[rule.ldm] = module_state[rule.module[0]]
        elif rule.kind == "conv1x1":
            tensor = module_state[rule.module[0]]
            out[rule.ldm] = tensor.reshape(*tensor.shape, 1, 1) if tensor.ndim == 2 else tensor
        else:
            import torch
            out[rule.ldm] = torch.cat([module_state[name] for name in rule.module], dim=0)
    return out


def expected_ldm_shapes(module_shapes: Mapping[str, tuple[int, ...]], rules: list[KeyRule]) -> dict[str, tuple[int, ...]]:
    """The LDM shape each rule expects, computed from the module's parameter shapes (no tensors needed)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for rule in rules:
        first = tuple(module_shapes[rule.module[0]])
        if rule.kind == "same":
            shapes[rule.ldm] = first
        elif rule.kind == "conv1x1":
            shapes[rule.ldm] = first + (1, 1) if len(first) == 2 else first
        else:
            shapes[rule.ldm] = (first[0] * len(rule.module),) + first[1:]
    return shapes
