"""Tiny Stable Diffusion checkpoints for tests and the quickstart.

    python -m library.tiny OUT.safetensors [--variant sd1|sd2|sd2-v] [--seed N]

Real SD block structure (4 UNet levels, cross-attention in the first three, transformer blocks at
output_blocks 3-11, a 4-level VAE, a CLIP text encoder with the real 49,408-token vocabulary) with narrow
layers and seeded random weights. The file is a genuine LDM single-file checkpoint: it loads through
`load_model` like any downloaded model, including the tensors real files carry beyond what the modules
hold (SD1 `position_ids`; SD2's last OpenCLIP block, `text_projection` and `logit_scale`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

VARIANTS = {"sd1": ("tiny-sd1", "epsilon"), "sd2": ("tiny-sd2", "epsilon"), "sd2-v": ("tiny-sd2", "v_prediction")}


def build_tiny(variant: str = "sd1", seed: int = 0):
    """A tiny `SDModel` with weights drawn from `seed` (same seed, same tensors)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
    name, prediction = VARIANTS[variant]
    return build_random(name, seed, prediction)


def build_random(config_name: str, seed: int = 0, prediction: str | None = None):
    """An `SDModel` of any shipped config (`tiny-sd1`, `sd1`, `sd2-512`, ...) with seeded random weights,
    carrying the extra tensors a real file of that layout has. Benchmarks use it at full size."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .models.keymap import to_ldm
    from .models.metadata import modelspec_metadata
    from .models.model_config import constructor_args, shipped_config
    from .models.sd_model import SDModel
    from .models.text_keys import SD1_PREFIX, SD2_PREFIX, open_clip_rules

    config = shipped_config(config_name).with_prediction_type(prediction)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(config.unet)
    vae = AutoencoderKL.from_config(config.vae)
    te_args = constructor_args(config.text_encoder)
    layers = te_args["num_hidden_layers"]
    extra_layer = 1 if config.family == "sd2" else 0  # SD2 files hold one more block than is used
    full = CLIPTextModel(CLIPTextConfig(**{**te_args, "num_hidden_layers": layers + extra_layer}))
    text_encoder = CLIPTextModel(CLIPTextConfig(**te_args))
    text_encoder.load_state_dict(full.state_dict(), strict=False)
    if config.family == "sd2":
        width = te_args["hidden_size"]
        ldm = to_ldm(full.state_dict(), open_clip_rules(list(full.state_dict())))
        last = f"{SD2_PREFIX}transformer.resblocks.{layers}."
        extras = {k: v.clone() for k, v in ldm.items() if k.startswith(last)}
        extras[SD2_PREFIX + "text_projection"] = torch.randn(width, width) * width ** -0.5
        extras[SD2_PREFIX + "logit_scale"] = torch.tensor(math.log(100.0))
    else:
        extras = {SD1_PREFIX + "embeddings.position_ids": torch.arange(77).unsqueeze(0)}
    metadata = modelspec_metadata(config, title=f"{config_name} seed {seed}")
    return SDModel(config, unet, vae, text_encoder, extras=extras, metadata=metadata)


def write_tiny(out: str | Path, variant: str = "sd1", seed: int = 0, precision: str | None = None) -> Path:
    from .models.sd_model import save_model

    model = build_tiny(variant, seed)
    return save_model(model, out, precision=precision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output: .safetensors (default), .ckpt, or a folder (diffusers)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="sd1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["float", "fp16", "bf16"], default=None)
    args = parser.parse_args(argv)
    path = write_tiny(args.out, args.variant, args.seed, args.precision)
    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"wrote {path} ({args.variant}, seed {args.seed}, {size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
