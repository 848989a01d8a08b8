"""The model side of a run: load the base checkpoint, put it on devices and dtypes, cache latents.

Which parts train follows kohya: DreamBooth data trains the text encoder too (train_db.py), fine-tuning
metadata only the U-Net unless asked (fine_tune.py).
"""

from __future__ import annotations

import hashlib
import sys

import torch

from ..config import LoadedConfig, TrainConfig
from ..errors import UserError
from ..models.sd_model import PRECISIONS


def base_model_source(train: TrainConfig) -> str:
    if not train.model.pretrained_model_name_or_path:
        raise UserError("no base model: set pretrained_model_name_or_path (a .safetensors/.ckpt file or a diffusers "
                        "folder).")
    return train.model.pretrained_model_name_or_path


def family_notes(train: TrainConfig, family: str) -> list[str]:
    """The base model's family against the options: v2 on SD1 weights is an error, the rest are notes."""
    source = train.model.pretrained_model_name_or_path
    if train.model.v2 and family != "sd2":
        raise UserError(f"{source}: v2 = true, but the weights are an SD1 model; remove v2.")
    notes = []
    if family == "sd2" and not train.model.v2:
        notes.append("SD2 weights detected; v2 = true is implied.")
    if train.model.clip_skip and family == "sd2":
        notes.append("clip_skip has no effect on SD2 (it always uses the penultimate OpenCLIP block, as A1111).")
    return notes


def load_base_model(train: TrainConfig):
    from ..models.sd_model import load_model

    model = load_model(base_model_source(train), v_parameterization=True if train.model.v_parameterization else None,
                       vae=train.model.vae)
    model.notes.extend(family_notes(train, model.family))
    return model


def text_encoder_until(train: TrainConfig, loaded: LoadedConfig) -> int | None:
    """DreamBooth datasets train the text encoder by default (train_db.py), fine-tuning ones only with
    train_text_encoder (fine_tune.py); stop_text_encoder_training ends it at a step, -1 means never."""
    stop = train.training.stop_text_encoder_training
    dreambooth = any(d.kind == "dreambooth" for d in loaded.datasets.datasets)
    if stop in (-1, 0) or not (train.training.train_text_encoder or dreambooth or stop):
        return None  # kohya stops at step 0 for 0: never trained
    return stop if stop and stop > 0 else sys.maxsize


def prepare_model(model, train: TrainConfig, accelerator, say) -> None:
    """Devices, dtypes, attention kernel, gradient checkpointing; the VAE stays frozen."""
    t = train.training
    if t.xformers or t.diffusers_xformers:
        try:
            import xformers  # noqa: F401
        except ImportError:
            raise UserError("xformers = true, but xformers is not installed (it is CUDA-only and pins its own torch). "
                            "Remove the option: PyTorch's SDPA attention is used by default.") from None
        model.unet.enable_xformers_memory_efficient_attention()
    if t.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.text_encoder.gradient_checkpointing_enable()
    if t.full_bf16:
        model.unet.to(torch.bfloat16)
        model.text_encoder.to(torch.bfloat16)
    model.vae.requires_grad_(False)
    model.vae.eval()
    vae_dtype = torch.float32 if train.model.no_half_vae else weight_dtype(t.mixed_precision)
    model.vae.to(accelerator.device)
    if vae_dtype != torch.float32:
        model.vae.to(vae_dtype)
    model.unet.to(accelerator.device)
    model.text_encoder.to(accelerator.device)
    model.unet.train()
    if t.torch_compile:
        model.unet = torch.compile(model.unet, backend=t.dynamo_backend)


def weight_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a mixed_precision value ("no": float32)."""
    return PRECISIONS.get(precision, torch.float32)


@torch.no_grad()
def encode_latents(vae: torch.nn.Module, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample the VAE posterior with `generator` (CPU draws: the same on any device) and scale as SD expects."""
    dist = vae.encode(pixels.to(next(vae.parameters()).dtype)).latent_dist
    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
    return (dist.mean + dist.std * noise) * vae.config.scaling_factor


def cache_latents(data, model, train: TrainConfig, accelerator) -> None:
    """Encode every image once (kohya's cache_latents); the cache is keyed by the VAE's weights."""
    vae = model.vae
    generator = torch.Generator().manual_seed(train.training.seed or 0)

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return encode_latents(vae, pixels.to(accelerator.device), generator).float().cpu()

    data.cache_latents(encode, vae_fingerprint(vae), to_disk=train.dataset.cache_latents_to_disk,
                       batch_size=train.dataset.vae_batch_size, progress=accelerator.is_main_process)


def vae_fingerprint(vae) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
