"""transformers `CLIPTextModel` key -> LDM text-encoder key, for both text towers SD uses.

SD1 stores the OpenAI CLIP text model under `cond_stage_model.transformer.text_model.` with the same names
transformers uses. SD2 stores OpenCLIP ViT-H under `cond_stage_model.model.` with its own names and q/k/v
stacked in `in_proj_*`; only the first `num_hidden_layers` blocks map (SD2 conditions on the penultimate
block, so the last block, `text_projection` and `logit_scale` are carried over untouched as extras).
"""

from __future__ import annotations

import re

from .keymap import KeyRule

SD1_PREFIX = "cond_stage_model.transformer.text_model."
SD2_PREFIX = "cond_stage_model.model."

_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")
_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def strip_text_model(key: str) -> str:
    """transformers 4 names keys `text_model.*`, transformers 5 drops that level; rules use the short form."""
    return key[len("text_model."):] if key.startswith("text_model.") else key


def clip_rules(module_keys: list[str]) -> list[KeyRule]:
    return [KeyRule(SD1_PREFIX + strip_text_model(k), (k,)) for k in module_keys]


def open_clip_rules(module_keys: list[str]) -> list[KeyRule]:
    by_short = {strip_text_model(k): k for k in module_keys}
    rules: list[KeyRule] = []
    for short, key in by_short.items():
        if short in _OPEN_CLIP_TOP:
            rules.append(KeyRule(SD2_PREFIX + _OPEN_CLIP_TOP[short], (key,)))
            continue
        qkv = _QKV.match(short)
        if qkv:
            layer, which, param = qkv.groups()
            if which == "q":
                parts = tuple(by_short[f"encoder.layers.{layer}.self_attn.{p}_proj.{param}"] for p in "qkv")
                rules.append(KeyRule(SD2_PREFIX + f"transformer.resblocks.{layer}.attn.in_proj_{param}", parts, "qkv"))
            continue
        match = _LAYER.match(short)
        if not match or match.group(2) not in _OPEN_CLIP_LAYER:
            raise KeyError(f"text-encoder key outside the OpenCLIP layout: {key}")
        layer, part, param = match.groups()
        rules.append(KeyRule(SD2_PREFIX + f"transformer.resblocks.{layer}.{_OPEN_CLIP_LAYER[part]}.{param}", (key,)))
    return rules
