"""diffusers `AutoencoderKL` key -> LDM `first_stage_model.*` key.

LDM counts decoder levels from the bottom (`up.0` is the last diffusers `up_blocks`), calls shortcut
convs `nin_shortcut`, and stores the mid-block attention as 1x1 convs named norm/q/k/v/proj_out.
"""

from __future__ import annotations

from .keymap import KeyRule

PREFIX = "first_stage_model."

_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_RESNET = {"conv_shortcut": "nin_shortcut"}


def _resnet(rest: list[str]) -> str:
    return ".".join([_RESNET.get(rest[0], rest[0]), *rest[1:]])


def ldm_rule(key: str, num_levels: int) -> KeyRule:
    parts = key.split(".")
    side, part = parts[0], parts[1] if len(parts) > 1 else ""
    if side not in ("encoder", "decoder"):
        return KeyRule(PREFIX + key, (key,))  # quant_conv, post_quant_conv
    if part == "conv_norm_out":
        return KeyRule(PREFIX + f"{side}.norm_out." + ".".join(parts[2:]), (key,))
    if part in ("down_blocks", "up_blocks"):
        i, kind, rest = int(parts[2]), parts[3], parts[4:]
        level, name = (f"down.{i}", "downsample") if part == "down_blocks" else (f"up.{num_levels - 1 - i}", "upsample")
        if kind in ("downsamplers", "upsamplers"):
            return KeyRule(PREFIX + f"{side}.{level}.{name}." + ".".join(rest[1:]), (key,))
        return KeyRule(PREFIX + f"{side}.{level}.block.{rest[0]}.{_resnet(rest[1:])}", (key,))
    if part == "mid_block":
        kind, j, rest = parts[2], int(parts[3]), parts[4:]
        if kind == "resnets":
            return KeyRule(PREFIX + f"{side}.mid.block_{j + 1}.{_resnet(rest)}", (key,))
        tail = ".".join(rest)
        for module, ldm in _ATTENTION.items():
            if tail.startswith(module + "."):
                param = tail[len(module) + 1:]
                kind_ = "conv1x1" if param == "weight" and ldm != "norm" else "same"
                return KeyRule(PREFIX + f"{side}.mid.attn_1.{ldm}.{param}", (key,), kind_)
    if part in ("conv_in", "conv_out"):
        return KeyRule(PREFIX + key, (key,))
    raise KeyError(f"VAE key outside the Stable Diffusion layout: {key}")


def vae_rules(module_keys: list[str], config: dict) -> list[KeyRule]:
    levels = len(config["block_out_channels"])
    return [ldm_rule(k, levels) for k in module_keys]
