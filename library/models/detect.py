"""Which architecture a single-file checkpoint holds, told from tensor names and shapes alone.

The text tower's key layout separates SD1 (OpenAI CLIP) from SD2 (OpenCLIP); the UNet's first conv and
first cross-attention give input channels, base width and context width. Weights cannot tell SD2-512
(epsilon) from SD2-768 (v-prediction): that comes from an explicit option, then metadata, else epsilon.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import UserError
from .model_config import ModelConfig, shipped_configs
from .text_keys import SD1_PREFIX, SD2_PREFIX
from .unet_keys import PREFIX as UNET_PREFIX
from .vae_keys import PREFIX as VAE_PREFIX

UNET_IN = UNET_PREFIX + "input_blocks.0.0.weight"
CROSS_ATTN = UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def fingerprint(shapes: Mapping[str, tuple[int, ...]], source: str) -> tuple:
    has = lambda prefix: any(k.startswith(prefix) for k in shapes)  # noqa: E731
    missing = [part for part, ok in (("UNet (model.diffusion_model.*)", UNET_IN in shapes),
                                     ("VAE (first_stage_model.*)", has(VAE_PREFIX)),
                                     ("text encoder (cond_stage_model.*)", has("cond_stage_model.")))
               if not ok]
    if missing:
        hint = ""
        if not has(UNET_PREFIX) and has("encoder.") and has("decoder."):
            hint = " It looks like a VAE file: pass it as the VAE option instead."
        elif any(k.startswith(("lora_", "lora_unet", "lora_te")) for k in shapes):
            hint = " It looks like a LoRA file, not a full checkpoint."
        raise UserError(f"{source}: not a complete Stable Diffusion checkpoint, missing the "
                        f"{' and the '.join(missing)}.{hint}")
    if has(SD2_PREFIX):
        family = "sd2"
    elif has(SD1_PREFIX):
        family = "sd1"
    else:
        raise UserError(f"{source}: unknown text-encoder layout (neither {SD1_PREFIX}* for SD1 nor "
                        f"{SD2_PREFIX}* for SD2). SDXL and other architectures are not supported.")
    if CROSS_ATTN not in shapes:
        raise UserError(f"{source}: the UNet has no cross-attention at input_blocks.1; not an SD1/SD2 UNet.")
    width, in_channels = shapes[UNET_IN][0], shapes[UNET_IN][1]
    return (family, in_channels, width, shapes[CROSS_ATTN][1])


def prediction_from_metadata(metadata: Mapping[str, str]) -> str | None:
    kind = metadata.get("modelspec.prediction_type", "").lower()
    if kind in ("v", "v_prediction") or metadata.get("modelspec.architecture", "").endswith("-v"):
        return "v_prediction"
    return "epsilon" if kind == "epsilon" else None


def wanted_prediction(v_parameterization: bool | None, metadata: Mapping[str, str]) -> str | None:
    """The prediction type asked for: the explicit option first, then the file's metadata; None if neither says."""
    if v_parameterization is not None:
        return "v_prediction" if v_parameterization else "epsilon"
    return prediction_from_metadata(metadata)


def detect_config(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], source: str,
                  v_parameterization: bool | None = None) -> tuple[ModelConfig, list[str]]:
    """Pick the shipped config matching the weights; returns it and notes for the log."""
    found = fingerprint(shapes, source)
    candidates = [c for c in shipped_configs() if c.fingerprint == found]
    if not candidates:
        family, in_channels, width, context = found
        what = f"{family}, {in_channels} input channels, width {width}, context {context}"
        hint = " (an inpainting model: not supported for training yet)" if in_channels == 9 else ""
        raise UserError(f"{source}: no model config matches these weights ({what}){hint}. Pass a diffusers "
                        f"config folder with the model_config option.")
    notes: list[str] = []
    wanted = wanted_prediction(v_parameterization, metadata)
    if wanted is None and len({c.prediction_type for c in candidates}) > 1:
        wanted = "epsilon"
        notes.append(f"{source}: the weights fit both SD2-512 (epsilon) and SD2-768 (v-prediction) and the "
                     f"file has no prediction-type metadata; assuming epsilon. For a 768-v model set "
                     f"v_parameterization = true.")
    chosen = next((c for c in candidates if c.prediction_type == wanted), candidates[0])
    return chosen.with_prediction_type(wanted), notes
