"""Pretrain the tiny world base model: `python -m library.world.pretrain OUT.safetensors [--seed S] [...]`.

Four stages on the tiny SD1 layout, all on figures drawn in memory from the world (`figure_at`):
1. the VAE learns to reconstruct small figures and crops (L1 on the posterior mean; some wear the star hair
   ornament, cropped around it, which the UNet never sees, so that a fine-tune can teach it), with three latent
   channels pulled toward the picture's colours (`colour_map_loss`), then its latent is rescaled exactly so
   that latents × 0.18215 have unit variance, as SD's generation code assumes;
2. `--images` figures are encoded once (posterior means), with their tags;
3. the text encoder learns to read captions: a linear probe must tell, from every position at and after the end
   token, which tag of each group (`TAG_GROUPS`) the caption says or that it says none. This stands in for CLIP's
   own pretraining: a random text encoder mixes up "blue hair" and "blue eyes", and a UNet trained with it
   learns only the attributes whose words are unique (hair length) and draws every colour by chance;
4. the UNet learns to denoise those latents from captions, the text encoder frozen (as SD's CLIP was): tags
   shuffled and thinned so that short prompts work, one caption in ten empty for CFG, CLIP skip 1 or 2 by turns
   so both A1111 settings work; v-prediction with the plain (unweighted) v loss; an EMA of the weights is what
   gets saved. At 128 pixels the latent is 16×16 and the starting noise's mean carries a picture's mean colour:
   an ε-predicting UNet, whose loss hardly asks for the picture at high noise, lets the seed choose it; v asks
   for the picture there, and the plain v loss keeps those steps' weight (ε's and min-SNR's fall to zero).

Each stage writes its result into `--work` (default OUT's name + `.work`) with the settings it was made with, so
a later run with other settings for a later stage reuses the earlier ones; the VAE and UNet stages also save their
full state every `--save-every` steps, so an interrupted run started again with the same command continues where
it was. The file is the same tiny SD1 layout as `python -m library.tiny` writes, in fp16 by default.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import get_args

import torch

from ..atomic import atomic_path, atomic_write_text
from ..data.build import LATENT_FACTOR
from ..data.pixels import to_batch
from ..errors import UserError, run_reporting_user_errors
from ..training.losses import PredictionType
from .figures import NOVEL_ACCESSORY, TAG_GROUPS, by_canvas, draw_figure, star_place, tags
from .sampling import figure_at, world_figure

CONFIG = "tiny-world-sd1"  # tiny-sd1 with group norms of 4+ channels (colour survives them) and 64-wide text
LATENT_SCALE = 0.18215  # SD1's; the VAE is rescaled to it rather than the config changed
WORLD_DATE = datetime(2026, 12, 7, tzinfo=timezone.utc)  # in the metadata, so the same command writes the same file


@dataclass(frozen=True)
class PretrainPlan:
    """Everything that decides the weights; the shipped model is the defaults."""

    seed: int = 0
    vae_steps: int = 4000
    vae_batch: int = 8
    vae_crop: int = 64  # VAE steps see 64-pixel pictures (`_vae_picture`): four times cheaper than 128
    vae_lr: float = 1e-3
    vae_star: float = 0.15  # share of VAE pictures with the star hair ornament (`_vae_picture`)
    vae_colour_map: float = 0.5  # weight of `colour_map_loss` (0: a plain autoencoder)
    images: int = 6000
    text_steps: int = 1500
    text_batch: int = 64
    text_lr: float = 1e-3
    unet_steps: int = 4800
    unet_batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    caption_dropout: float = 0.1
    tag_keep: float = 0.7  # each tag after "1girl" is kept with this chance, so prompts may name a few things
    ema_decay: float = 0.999
    min_snr_gamma: float = 0.0  # 0: no weighting (the plain loss of `prediction`)
    prediction: PredictionType = "v_prediction"  # or "epsilon"
    save_every: int = 250


# The settings each stage's result depends on: a stage is reused when these are the same.
_VAE_FIELDS = ("seed", "vae_steps", "vae_batch", "vae_crop", "vae_lr", "vae_star", "vae_colour_map")
_CAPTION_FIELDS = ("caption_dropout", "tag_keep")
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "vae": _VAE_FIELDS,
    "latents": (*_VAE_FIELDS, "images"),
    "text": ("seed", "text_steps", "text_batch", "text_lr", *_CAPTION_FIELDS),
    "denoiser": tuple(name for name in PretrainPlan.__dataclass_fields__ if name != "save_every"),
}
# Settings added after stage records were first written: the value a record without one was made with.
ADDED_SETTINGS: dict[str, object] = {"prediction": "epsilon", "vae_colour_map": 0.0}
# The files each stage leaves in the work folder: its resumable state and its result.
VAE_STATE, VAE_RESULT, LATENTS, TEXT_RESULT, DENOISER_STATE = (
    "vae-state.pt", "vae.pt", "latents.pt", "text.pt", "denoiser-state.pt")
STAGE_FILES: dict[str, tuple[str, ...]] = {"vae": (VAE_STATE, VAE_RESULT), "latents": (LATENTS,),
                                           "text": (TEXT_RESULT,), "denoiser": (DENOISER_STATE,)}


def training_caption(caption: list[str], rng: random.Random, plan: PretrainPlan) -> str:
    """What the UNet is shown for one figure: empty now and then; else "1girl" and a shuffled, thinned rest."""
    if rng.random() < plan.caption_dropout:
        return ""
    rest = [tag for tag in caption[1:] if rng.random() < plan.tag_keep]
    rng.shuffle(rest)
    return ", ".join([caption[0], *rest])


# --- stage 1: the VAE ---------------------------------------------------------------------------------------

def train_vae(vae: torch.nn.Module, plan: PretrainPlan, work: Path, say) -> None:
    """L1 on the posterior mean, plus `colour_map_loss` by its weight; the state is saved every `save_every` steps."""
    rng = random.Random(f"vae:{plan.seed}")
    colour_scale = 1 / colour_map(_rescale_probe(plan.seed)).std(dim=(0, 2, 3))[None, :, None, None] \
        if plan.vae_colour_map > 0 else None
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    start, state_file = 0, work / VAE_STATE
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
        batch = torch.stack([_vae_picture(plan.seed, rng, plan.vae_crop, k % 2 == 0, plan.vae_star)
                             for k in range(plan.vae_batch)])
        mean = vae.encode(batch).latent_dist.mean
        loss = (vae.decode(mean).sample - batch).abs().mean()
        if plan.vae_colour_map > 0:
            loss = loss + plan.vae_colour_map * colour_map_loss(mean, batch, colour_scale)
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


OPPONENT = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]])  # luminance, red-blue, green-magenta


def colour_map(pixels: torch.Tensor) -> torch.Tensor:
    """The picture at the latent's resolution (pooled by the VAE's factor) in luminance and two opponent-colour axes."""
    return torch.einsum("ij,bjhw->bihw", OPPONENT, torch.nn.functional.avg_pool2d(pixels, LATENT_FACTOR))


def colour_map_loss(mean: torch.Tensor, pixels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """L1 between the first three latent channels (the batch's latents at unit spread) and the colour map, each
    axis at unit spread (`scale`). A plain autoencoder keeps hue in small latent differences that diffusion noise
    covers first (its UNet then draws hair colours by chance); this makes hue a large, linear part of the latent,
    as it nearly is in SD's. The fourth channel is free."""
    target = colour_map(pixels)
    target = scale * (target - target.mean(dim=(0, 2, 3), keepdim=True))
    return ((mean / mean.std())[:, :3] - target).abs().mean()


def _rescale_probe(seed: int) -> torch.Tensor:
    """Pictures no VAE step sees, for the latent rescale and the colour map's spread."""
    return to_batch([draw_figure(figure_at(seed + 2, i)) for i in range(0, 48, 3)])


def _vae_picture(seed: int, rng: random.Random, side: int, whole: bool, star: float) -> torch.Tensor:
    """A `side`-pixel square: a whole figure drawn that small (colours against a background), or a crop of a
    full-size one (detail). A share `star` wear the star hair ornament: the VAE is the model's image codec and,
    like SD's, learns more than the diffusion model ever sees; one that never saw the star turns it into an
    orange blob, and no fine-tune could then teach the quickstart's concept."""
    fig = world_figure(random.Random(f"vae:{seed}:{rng.random()}"), (side, side)) if whole else \
        figure_at(seed + 1, rng.randrange(10**9))
    around = None
    if star > 0 and rng.random() < star:  # no draw at 0: the stream of pictures is then the one before the star
        fig = replace(fig, accessory=NOVEL_ACCESSORY)
        x, y, outer = star_place(fig)
        around = (x - outer, y - outer, x + outer, y + outer)
    picture = to_batch([draw_figure(fig)])[0]
    return picture if whole else _random_crop(picture, side, rng, around)


def _random_crop(image: torch.Tensor, size: int, rng: random.Random,
                 around: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """A random `size` square; with `around` (left, top, right, bottom), one of those that hold that box."""
    _, height, width = image.shape
    rows, cols = range(height - size + 1), range(width - size + 1)
    if around is not None:
        rows = _holding(around[1], around[3], height, size)
        cols = _holding(around[0], around[2], width, size)
    top, left = rng.choice(rows), rng.choice(cols)
    return image[:, top:top + size, left:left + size]


def _holding(low: float, high: float, length: int, size: int) -> range:
    """Starts of the `size` windows in [0, length) that hold [low, high] clipped to the picture (any window when
    the span is longer than one)."""
    low, high = max(0, math.floor(low)), min(length, math.ceil(high))
    first, last = max(0, high - size), min(length - size, low)
    return range(first, last + 1) if first <= last else range(length - size + 1)


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
    world = [figure_at(plan.seed, index) for index in range(plan.images)]
    latents, captions = {}, {}
    started = time.monotonic()
    for (width, height), indices in by_canvas(world).items():
        figs = [world[i] for i in indices]
        chunks = [vae.encode(to_batch([draw_figure(fig) for fig in figs[start:start + batch]])).latent_dist.mean
                  for start in range(0, len(figs), batch)]
        key = f"{width}x{height}"
        latents[key] = torch.cat(chunks) * LATENT_SCALE
        captions[key] = [tags(fig) for fig in figs]
        say(f"encoded {len(figs)} figures of {key} ({time.monotonic() - started:.0f} s)")
    return {"latents": latents, "captions": captions}


# --- stage 3: the text encoder ------------------------------------------------------------------------------

def caption_targets(text: str) -> list[int]:
    """Per tag group, the index of the tag `text` says, or the group's length when it says none."""
    said = set(text.split(", "))
    return [next((k for k, tag in enumerate(group) if tag in said), len(group)) for group in TAG_GROUPS.values()]


def train_text_encoder(model, plan: PretrainPlan, say) -> None:
    """Teach the text encoder to say in every position from the end token on which tag of each group a caption
    names (the positions a UNet's cross-attention can read a summary from, whatever the prompt's length), for
    both CLIP skip 1 and 2 through one shared linear probe, which is then thrown away."""
    from ..text.chunking import EOS_ID
    from ..text.conditioning import chunk_tokens, encode_chunks

    text_encoder, sizes = model.text_encoder, [len(group) + 1 for group in TAG_GROUPS.values()]
    with torch.random.fork_rng():
        torch.manual_seed(plan.seed)
        probe = torch.nn.Linear(text_encoder.config.hidden_size, sum(sizes))
    params = list(text_encoder.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(params, lr=plan.text_lr, weight_decay=0.0)
    rng = random.Random(f"text:{plan.seed}")
    text_encoder.train()
    started = time.monotonic()
    for step in range(plan.text_steps):
        for group in optimizer.param_groups:
            group["lr"] = plan.text_lr * _cosine(step, plan.text_steps, 50)
        texts = [training_caption(tags(figure_at(plan.seed + 3, step * plan.text_batch + k)), rng, plan)
                 for k in range(plan.text_batch)]
        tokens = chunk_tokens(model.tokenizer, texts, 1, model.family)
        ends = (tokens[:, 0] == EOS_ID).int().argmax(dim=1)
        mask = torch.arange(tokens.shape[-1]) >= ends[:, None]  # the end token and the padding after it
        targets = torch.tensor([caption_targets(text) for text in texts])[mask.nonzero()[:, 0]]
        loss = torch.zeros(())
        for clip_skip in (1, 2):
            hidden = encode_chunks(text_encoder, tokens, clip_skip, model.family)
            for k, logits in enumerate(probe(hidden[mask]).split(sizes, dim=1)):
                loss = loss + torch.nn.functional.cross_entropy(logits, targets[:, k])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step + 1 == plan.text_steps:
            say(f"text step {step + 1}/{plan.text_steps}: probe loss {loss.item() / (2 * len(sizes)):.4f} "
                f"({time.monotonic() - started:.0f} s)")
    text_encoder.eval()


# --- stage 4: the UNet ----------------------------------------------------------------------------------------

def train_denoiser(model, world: dict[str, object], plan: PretrainPlan, work: Path, say) -> dict[str, torch.Tensor]:
    """Train the UNet on the encoded world, the text encoder frozen; returns the UNet's EMA weights."""
    from ..sampling.schedule import alphas_cumprod
    from ..text.conditioning import chunk_tokens, encode_chunks
    from ..training.noise import add_noise

    unet, text_encoder = model.unet, model.text_encoder.eval()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=plan.lr, weight_decay=0.01)
    ema = {name: p.detach().clone() for name, p in unet.named_parameters()}
    latents, captions = world["latents"], world["captions"]
    sizes = sorted(latents)
    weights = [len(captions[key]) for key in sizes]
    rng, generator = random.Random(f"unet:{plan.seed}"), torch.Generator().manual_seed(plan.seed)
    ac = alphas_cumprod(model.config.scheduler)
    start = 0
    state_file = work / DENOISER_STATE
    if state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        ema, start = state["ema"], state["step"]
        rng.setstate(state["rng"])
        generator.set_state(state["generator"])
        say(f"resuming the UNet stage at step {start}")
    unet.train()
    started = time.monotonic()
    for step in range(start, plan.unet_steps):
        for group in optimizer.param_groups:
            group["lr"] = plan.lr * _cosine(step, plan.unet_steps, plan.warmup)
        key = rng.choices(sizes, weights=weights)[0]
        rows = [rng.randrange(len(captions[key])) for _ in range(plan.unet_batch)]
        texts = [training_caption(captions[key][row], rng, plan) for row in rows]
        x0 = latents[key][rows]
        noise = torch.randn(x0.shape, generator=generator)
        timesteps = torch.randint(0, len(ac), (len(rows),), generator=generator)
        with torch.no_grad():
            context = encode_chunks(text_encoder, chunk_tokens(model.tokenizer, texts, 1, model.family),
                                    1 + step % 2, model.family)
        pred = unet(add_noise(x0, noise, timesteps, ac), timesteps, context).sample
        loss = denoiser_loss(pred, x0, noise, timesteps, ac, plan)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(plan.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, p in unet.named_parameters():
                ema[name].lerp_(p.detach(), 1 - decay)
        done = step + 1
        if step % 50 == 0 or done == plan.unet_steps:
            rate = (done - start) * plan.unet_batch / max(time.monotonic() - started, 1e-9)
            say(f"unet step {done}/{plan.unet_steps}: loss {loss.item():.4f} ({rate:.1f} samples/s)")
        if done % 200 == 0 or done == plan.unet_steps:
            say(f"unet step {done}: prompt gap {prompt_gap(model, world, ac):+.1%} (training weights, not the EMA)")
        if done % plan.save_every == 0 and done < plan.unet_steps:
            _atomic_save({"unet": unet.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema, "step": done,
                          "rng": rng.getstate(), "generator": generator.get_state()}, state_file)
    unet.eval()
    return ema


def denoiser_loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                  ac: torch.Tensor, plan: PretrainPlan) -> torch.Tensor:
    """The trainer's loss (`diffusion_loss`): mean squared error against the plan's prediction target, min-SNR
    weighted when its γ is above 0."""
    from ..training.losses import LossOptions, diffusion_loss

    loss, _ = diffusion_loss(pred, x0, noise, timesteps, alphas_cumprod=ac, prediction_type=plan.prediction,
                             options=LossOptions(min_snr_gamma=plan.min_snr_gamma), sample_weights=torch.ones(len(x0)))
    return loss


@torch.no_grad()
def prompt_gap(model, world: dict[str, object], ac: torch.Tensor, count: int = 48) -> float:
    """How much worse the UNet denoises square figures given other figures' captions than their own (fixed
    noise, timesteps 100..900): near 0 means it ignores the prompt, which the loss alone cannot show."""
    from ..text.conditioning import encode_prompts
    from ..training.losses import training_target
    from ..training.noise import add_noise

    x0 = world["latents"]["128x128"][:count]
    texts = [", ".join(caption) for caption in world["captions"]["128x128"][:count]]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    timesteps = torch.linspace(100, 900, len(x0)).long()
    noisy = add_noise(x0, noise, timesteps, ac)
    target = training_target(x0, noise, timesteps, ac, model.prediction_type)
    training = model.unet.training
    model.unet.eval()

    def error(prompts: list[str]) -> float:
        context = encode_prompts(model, prompts, max_chunks=1)
        return (model.unet(noisy, timesteps, context).sample - target).pow(2).mean().item()

    gap = error(texts[1:] + texts[:1]) / error(texts) - 1
    model.unet.train(training)
    return gap


def _cosine(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --- the whole run --------------------------------------------------------------------------------------------

def claim_stages(work: Path, plan: PretrainPlan) -> None:
    """Record the settings each stage's files in `work` are made with (`<stage>.plan.json`); refuse, before any
    work, to continue a stage whose files were made with other settings (or with unrecorded ones, by an older
    version), naming the files to delete to make it again. A stage without files takes the new settings."""
    stale: dict[str, str] = {}
    for stage, fields in STAGE_FIELDS.items():
        record = work / f"{stage}.plan.json"
        wanted = {name: getattr(plan, name) for name in fields}
        if not any((work / name).exists() for name in STAGE_FILES[stage]):
            atomic_write_text(record, json.dumps(wanted, sort_keys=True))
        elif not record.is_file():
            stale[stage] = "settings not recorded"
        elif (had := {**ADDED_SETTINGS, **json.loads(record.read_text())}) != (now := {**ADDED_SETTINGS, **wanted}):
            stale[stage] = ", ".join(f"{name} {had.get(name)!r} there, {now.get(name)!r} now"
                                     for name in [*now, *sorted(had.keys() - now.keys())]
                                     if had.get(name) != now.get(name))
    if stale:
        files = [name for stage in stale for name in (f"{stage}.plan.json", *STAGE_FILES[stage])
                 if (work / name).exists()]
        raise UserError(f"{work} holds stages made with other settings: "
                        + "; ".join(f"{stage} ({why})" for stage, why in stale.items())
                        + f". Use the same options to continue, delete {', '.join(sorted(files))} there to make "
                          "those stages again with these (the others are reused), or use another --work folder.")


def pretrain(out: Path, plan: PretrainPlan, work: Path | None = None, precision: str | None = "fp16",
             say=print) -> Path:
    """Run (or continue) the four stages and write the base model to `out`."""
    from ..models.metadata import modelspec_metadata
    from ..models.sd_model import save_model
    from ..tiny import build_random

    work = Path(work or out.with_name(out.name + ".work"))
    work.mkdir(parents=True, exist_ok=True)
    claim_stages(work, plan)
    model = build_random(CONFIG, seed=plan.seed, prediction=plan.prediction)
    vae_file = work / VAE_RESULT
    if vae_file.is_file():
        model.vae.load_state_dict(torch.load(vae_file))
        say(f"VAE stage done earlier: {vae_file}")
    else:
        train_vae(model.vae, plan, work, say)
        probe = _rescale_probe(plan.seed)
        say(f"latent rescale ×{rescale_latents(model.vae, probe):.3f} for unit variance at scale {LATENT_SCALE}")
        _atomic_save(model.vae.state_dict(), vae_file)
    model.vae.requires_grad_(False)
    world_file = work / LATENTS
    if world_file.is_file():
        world = torch.load(world_file, weights_only=False)
    else:
        world = encode_world(model.vae, plan, say)
        _atomic_save(world, world_file)
    text_file = work / TEXT_RESULT
    if text_file.is_file():
        model.text_encoder.load_state_dict(torch.load(text_file))
        say(f"text stage done earlier: {text_file}")
    else:
        train_text_encoder(model, plan, say)
        _atomic_save(model.text_encoder.state_dict(), text_file)
    model.text_encoder.requires_grad_(False)
    ema = train_denoiser(model, world, plan, work, say)
    with torch.no_grad():
        for name, p in model.unet.named_parameters():
            p.copy_(ema[name])
    plan_text = json.dumps(asdict(plan), sort_keys=True)
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
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value, help=f"default {value}",
                            choices=get_args(PredictionType) if name == "prediction" else None)
    args = parser.parse_args(argv)
    plan = PretrainPlan(**{name: getattr(args, name) for name in asdict(defaults)})

    def work() -> None:
        path = pretrain(args.out, plan, args.work, args.precision)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")

    return run_reporting_user_errors(work, status=1)


if __name__ == "__main__":
    sys.exit(main())
