"""diffusers `UNet2DConditionModel` key -> LDM `model.diffusion_model.*` key.

LDM numbers its blocks flat: `input_blocks.0` is conv_in, then each down level holds `layers_per_block`
resnet(+attention) blocks and one downsampler; `output_blocks` hold `layers_per_block + 1` blocks per up
level, the upsampler sitting after the attention (`.2.conv`) or, in levels without attention, at `.1.conv`.
"""

from __future__ import annotations

from .keymap import KeyRule

PREFIX = "model.diffusion_model."

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet(rest: list[str]) -> str:
    return ".".join([_RESNET[rest[0]], *rest[1:]])


def ldm_key(key: str, layers_per_block: int, up_block_types: list[str]) -> str:
    """Translate one diffusers UNet key; raises KeyError for a key outside the SD layout."""
    parts = key.split(".")
    for module, ldm in _TOP.items():
        if key.startswith(module + "."):
            return PREFIX + ldm + key[len(module):]
    level = layers_per_block + 1
    if parts[0] == "down_blocks":
        i, kind, rest = int(parts[1]), parts[2], parts[3:]
        if kind == "downsamplers":
            return PREFIX + f"input_blocks.{1 + i * level + layers_per_block}.0.op." + ".".join(rest[2:])
        j = int(rest[0])
        block = f"input_blocks.{1 + i * level + j}"
        return PREFIX + (f"{block}.0.{_resnet(rest[1:])}" if kind == "resnets" else f"{block}.1." + ".".join(rest[1:]))
    if parts[0] == "mid_block":
        kind, j, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "attentions":
            return PREFIX + "middle_block.1." + ".".join(rest)
        return PREFIX + f"middle_block.{2 * j}.{_resnet(rest)}"
    if parts[0] == "up_blocks":
        i, kind, rest = int(parts[1]), parts[2], parts[3:]
        if kind == "upsamplers":
            slot = 2 if up_block_types[i].startswith("CrossAttn") else 1
            return PREFIX + f"output_blocks.{i * level + layers_per_block}.{slot}.conv." + ".".join(rest[2:])
        j = int(rest[0])
        block = f"output_blocks.{i * level + j}"
        return PREFIX + (f"{block}.0.{_resnet(rest[1:])}" if kind == "resnets" else f"{block}.1." + ".".join(rest[1:]))
    raise KeyError(f"UNet key outside the Stable Diffusion layout: {key}")


def unet_rules(module_keys: list[str], config: dict) -> list[KeyRule]:
    layers, ups = config["layers_per_block"], list(config["up_block_types"])
    return [KeyRule(ldm_key(k, layers, ups), (k,)) for k in module_keys]
