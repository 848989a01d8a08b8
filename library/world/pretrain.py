"""Pretrain the tiny world base model: `python -m library.world.pretrain OUT.safetensors [--seed S] [...]`.

Three stages on the tiny SD1 layout, all on figures drawn in memory from the world (`figure_at`):
1. the VAE learns to reconstruct crops as a plain autoencoder (L1 on the posterior mean), then its latent is
   rescaled exactly so that latents × 0.18215 have unit variance, as SD's generation code assumes;
2. `--images` figures are encoded once (posterior means), with their tags;
3. the UNet and the text encoder learn to denoise those latents from captions: tags shuffled and thinned so that
   short prompts work, one caption in ten empty for CFG, CLIP skip 1 or 2 by turns so both A1111 settings work,
   ε prediction with min-SNR-5 weighting, and an EMA of the weights is what gets saved.

Each stage writes its result into `--work` (default OUT's name + `.work`); the UNet stage also its full state
every `--save-every` steps, so an interrupted run started again with the same command continues where it was.
The file is the same tiny SD1 layout as `python -m library.tiny` writes, in fp16 by default.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..atomic import atomic_path, atomic_write_text
from ..errors import UserError
from .figures import draw_figure, tags
from .sampling import figure_at, world_figure

CONFIG = "tiny-world-sd1"  # tiny-sd1 with group norms of 4+ channels (colour survives them) and 64-wide text
LATENT_SCALE = 0.18215  # SD1's; the VAE is rescaled to it rather than the config changed
WORLD_DATE = datetime(2026, 12, 7, tzinfo=timezone.utc)  # in the metadata, so the same command writes the same file


@dataclass(frozen=True)
class PretrainPlan:
    """Everything that decides the weights; the defaults made the shipped model."""

    seed: int = 0
    vae_steps: int = 2000
    vae_batch: int = 8
    vae_crop: int = 64  # VAE steps see 64-pixel pictures (`_vae_picture`): four times cheaper than 128
    vae_lr: float = 1e-3
    images: int = 6000
    unet_steps: int = 2400
    unet_batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    caption_dropout: float = 0.1
    tag_keep: float = 0.7  # each tag after "1girl" is kept with this chance, so prompts may name a few things
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    save_every: int = 250


def pixels(image) -> torch.Tensor:
    """A PIL image as a [3, H, W] tensor in [-1, 1], as the VAE reads it."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(image.height, image.width, 3)
    return data.permute(2, 0, 1).float() / 127.5 - 1.0


def training_caption(caption: list[str], rng: random.Random, plan: PretrainPlan) -> str:
    """What the UNet is shown for one figure: empty now and then; else "1girl" and a shuffled, thinned rest."""
    if rng.random() < plan.caption_dropout:
        return ""
    rest = [tag for tag in caption[1:] if rng.random() < plan.tag_keep]
    rng.shuffle(rest)
    return ", ".join([caption[0], *rest])


# --- stage 1: the VAE ---------------------------------------------------------------------------------------

def train_vae(vae: torch.nn.Module, plan: PretrainPlan, work: Path, say) -> None:
    """L1 on the posterior mean (a plain autoencoder); the state is saved every `save_every` steps."""
    rng = random.Random(f"vae:{plan.seed}")
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    start, state_file = 0, work / "vae-state.pt"
    if state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        vae.load_state_dict(state["vae"])
        optimizer.load_state_dict(state["optimizer"])
        rng.setstate(state["rng"])
        start = state["step"]
        say(f"resuming the VAE stage at step {start}")
    vae.train()
    started = time.monotonic()
    for step in range(start, plan.vae_steps):
        for group in optimizer.param_groups:
            group["lr"] = plan.vae_lr * _cosine(step, plan.vae_steps, 50)
        batch = torch.stack([_vae_picture(plan.seed, rng, plan.vae_crop, whole=k % 2 == 0) for k in range(plan.vae_batch)])
        loss = (vae.decode(vae.encode(batch).latent_dist.mean).sample - batch).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if step % 100 == 0 or done == plan.vae_steps:
            say(f"vae step {done}/{plan.vae_steps}: L1 {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
        if done % plan.save_every == 0 and done < plan.vae_steps:
            _atomic_save({"vae": vae.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.getstate(),
                          "step": done}, state_file)
    vae.eval()


def _vae_picture(seed: int, rng: random.Random, side: int, whole: bool) -> torch.Tensor:
    """A `side`-pixel square: a whole figure drawn that small, or a crop of a full-size one. The VAE's group norms
    hold one channel each in this layout, so a picture must show contrast (figure and background) for its colours
    to come through: whole small figures teach that, crops teach full-size detail."""
    if whole:
        return pixels(draw_figure(world_figure(random.Random(f"vae:{seed}:{rng.random()}"), (side, side))))
    return _random_crop(pixels(draw_figure(figure_at(seed + 1, rng.randrange(10**9)))), side, rng)


def _random_crop(image: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    _, height, width = image.shape
    top, left = rng.randrange(height - size + 1), rng.randrange(width - size + 1)
    return image[:, top:top + size, left:left + size]


@torch.no_grad()
def rescale_latents(vae: torch.nn.Module, samples: torch.Tensor) -> float:
    """Scale the latent space by s so that `LATENT_SCALE` × latents has unit variance on `samples`: the
    encoder's mean rows are multiplied by s and the decoder's first layer divided by it, so every decoded image
    stays exactly what it was. The posterior is made a point (log-variance −30, diffusers' floor): the VAE was
    trained as a plain autoencoder, so a sampled latent is its mean. Returns s."""
    channels = vae.config.latent_channels
    std = vae.encode(samples).latent_dist.mean.std().item()
    s = 1.0 / (LATENT_SCALE * std)
    vae.quant_conv.weight[:channels] *= s
    vae.quant_conv.bias[:channels] *= s
    vae.quant_conv.weight[channels:] = 0.0
    vae.quant_conv.bias[channels:] = -30.0
    vae.post_quant_conv.weight[:, :channels] /= s
    return s


# --- stage 2: the latents -----------------------------------------------------------------------------------

@torch.no_grad()
def encode_world(vae: torch.nn.Module, plan: PretrainPlan, say, batch: int = 64) -> dict[str, object]:
    """Posterior means × LATENT_SCALE of figures 0..images-1, grouped by size, with each figure's tags."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index in range(plan.images):
        fig = figure_at(plan.seed, index)
        groups.setdefault((fig.width, fig.height), []).append(index)
    latents, captions = {}, {}
    started = time.monotonic()
    for size, indices in groups.items():
        chunks = []
        for start in range(0, len(indices), batch):
            figs = [figure_at(plan.seed, i) for i in indices[start:start + batch]]
            images = torch.stack([pixels(draw_figure(fig)) for fig in figs])
            chunks.append(vae.encode(images).latent_dist.mean * LATENT_SCALE)
        key = f"{size[0]}x{size[1]}"
        latents[key] = torch.cat(chunks)
        captions[key] = [tags(figure_at(plan.seed, i)) for i in indices]
        say(f"encoded {len(indices)} figures of {key} ({time.monotonic() - started:.0f} s)")
    return {"latents": latents, "captions": captions}


# --- stage 3: the UNet and the text encoder -----------------------------------------------------------------

def train_denoiser(model, world: dict[str, object], plan: PretrainPlan, work: Path, say) -> dict[str, dict]:
    """Train UNet and text encoder on the encoded world; returns the EMA weights of both."""
    from ..sampling.schedule import alphas_cumprod
    from ..text.conditioning import chunk_tokens, encode_chunks
    from ..training.losses import min_snr_weight
    from ..training.noise import add_noise

    unet, text_encoder = model.unet, model.text_encoder
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.01)
    ema = {name: p.detach().clone() for name, p in _named_trainables(model)}
    latents, captions = world["latents"], world["captions"]
    sizes = sorted(latents)
    weights = [len(captions[key]) for key in sizes]
    rng, generator = random.Random(f"unet:{plan.seed}"), torch.Generator().manual_seed(plan.seed)
    ac = alphas_cumprod(model.config.scheduler)
    start = 0
    state_file = work / "denoiser-state.pt"
    if state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        optimizer.load_state_dict(state["optimizer"])
        ema, start = state["ema"], state["step"]
        rng.setstate(state["rng"])
        generator.set_state(state["generator"])
        say(f"resuming the UNet stage at step {start}")
    tokenizer = model.tokenizer
    unet.train()
    text_encoder.train()
    started = time.monotonic()
    for step in range(start, plan.unet_steps):
        for group in optimizer.param_groups:
            group["lr"] = plan.lr * _cosine(step, plan.unet_steps, plan.warmup)
        key = rng.choices(sizes, weights=weights)[0]
        rows = [rng.randrange(len(captions[key])) for _ in range(plan.unet_batch)]
        texts = [training_caption(captions[key][row], rng, plan) for row in rows]
        clip_skip = 1 + step % 2
        x0 = latents[key][rows]
        noise = torch.randn(x0.shape, generator=generator)
        timesteps = torch.randint(0, len(ac), (len(rows),), generator=generator)
        context = encode_chunks(text_encoder, chunk_tokens(tokenizer, texts, 1, model.family), clip_skip, model.family)
        pred = unet(add_noise(x0, noise, timesteps, ac), timesteps, context).sample
        per_sample = (pred.float() - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (per_sample * min_snr_weight(timesteps, plan.min_snr_gamma, ac, "epsilon")).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(plan.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, p in _named_trainables(model):
                ema[name].lerp_(p.detach(), 1 - decay)
        done = step + 1
        if step % 50 == 0 or done == plan.unet_steps:
            rate = (done - start) * plan.unet_batch / max(time.monotonic() - started, 1e-9)
            say(f"unet step {done}/{plan.unet_steps}: loss {loss.item():.4f} ({rate:.1f} samples/s)")
        if done % plan.save_every == 0 and done < plan.unet_steps:
            _atomic_save({"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                          "optimizer": optimizer.state_dict(), "ema": ema, "step": done,
                          "rng": rng.getstate(), "generator": generator.get_state()}, state_file)
    unet.eval()
    text_encoder.eval()
    return ema


def _named_trainables(model):
    for part in ("unet", "text_encoder"):
        for name, p in getattr(model, part).named_parameters():
            yield f"{part}.{name}", p


def _cosine(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --- the whole run --------------------------------------------------------------------------------------------

def pretrain(out: Path, plan: PretrainPlan, work: Path | None = None, precision: str | None = "fp16",
             say=print) -> Path:
    """Run (or continue) the three stages and write the base model to `out`."""
    from ..models.metadata import modelspec_metadata
    from ..models.sd_model import save_model
    from ..tiny import build_random

    work = Path(work or out.with_name(out.name + ".work"))
    work.mkdir(parents=True, exist_ok=True)
    plan_text = repr(sorted(asdict(plan).items()))
    plan_file = work / "plan.txt"
    if plan_file.is_file() and plan_file.read_text() != plan_text:
        raise UserError(f"{work} holds a pretraining run with other settings ({plan_file}); "
                        "use the same options to continue it, or another --work folder.")
    atomic_write_text(plan_file, plan_text)
    model = build_random(CONFIG, seed=plan.seed)
    vae_file = work / "vae.pt"
    if vae_file.is_file():
        model.vae.load_state_dict(torch.load(vae_file))
        say(f"VAE stage done earlier: {vae_file}")
    else:
        train_vae(model.vae, plan, work, say)
        probe = torch.stack([pixels(draw_figure(figure_at(plan.seed + 2, i))) for i in range(0, 48, 3)])
        say(f"latent rescale ×{rescale_latents(model.vae, probe):.3f} for unit variance at scale {LATENT_SCALE}")
        _atomic_save(model.vae.state_dict(), vae_file)
    model.vae.requires_grad_(False)
    world_file = work / "latents.pt"
    if world_file.is_file():
        world = torch.load(world_file, weights_only=False)
    else:
        world = encode_world(model.vae, plan, say)
        _atomic_save(world, world_file)
    ema = train_denoiser(model, world, plan, work, say)
    with torch.no_grad():
        for name, p in _named_trainables(model):
            p.copy_(ema[name])
    meta = modelspec_metadata(model.config, title="tiny world SD1", resolution=(128, 128), date=WORLD_DATE,
                              extra={"ss_world_pretrain": plan_text})
    model.metadata = meta
    return save_model(model, out, precision=precision)


def main(argv: list[str] | None = None) -> int:
    defaults = PretrainPlan()
    parser = argparse.ArgumentParser(prog="python -m library.world.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, metavar="OUT", help="the model file to write (.safetensors)")
    parser.add_argument("--work", type=Path, default=None, help="stage results and resumable state (default OUT.work)")
    parser.add_argument("--precision", choices=["float", "fp16", "bf16"], default="fp16")
    for name, value in asdict(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value, help=f"default {value}")
    args = parser.parse_args(argv)
    plan = PretrainPlan(**{name: getattr(args, name) for name in asdict(defaults)})
    try:
        path = pretrain(args.out, plan, args.work, args.precision)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
