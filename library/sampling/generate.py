"""The one image generator: the trainer's sample images, gen_reg_images.py and the regularization stream call it.

    images = generate(model, [GenerationRequest("1girl, autumn", seed=114514, steps=28, cfg_scale=11)])
    save_png(images[0].image, "out.png", images[0].infotext)

It works as A1111 txt2img with the CPU RNG source: per-image seeded noise (`noise.ImageNoise`), k-diffusion
sigmas and samplers, CFG on the denoised outputs, per-image VAE decode. An image depends only on its
request and seed, not on its batch (up to the UNet's float rounding at another batch size). It can run
in the middle of training: modules keep their train/eval flags and devices, torch's global RNG state is
restored, and nothing builds autograd graphs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence

import torch

from ..errors import UserError
from ..text.conditioning import encode_chunks
from ..text.emphasis import apply_emphasis, weighted_chunks
from .decode import decode_latents, to_pil
from .denoiser import CFGDenoiser
from .infotext import ModelIdentity, infotext
from .noise import ImageNoise, resolve_seed
from .request import GenerationRequest, sampler_key
from .samplers import SIGMA_SAMPLERS
from .schedule import alphas_cumprod

if TYPE_CHECKING:
    from PIL import Image

    from ..models.sd_model import SDModel


@dataclass(frozen=True)
class GeneratedImage:
    """One result: `image` (output "pil") or `latents` `[4, h/8, w/8]` on the device (output "latents")."""

    request: GenerationRequest
    seed: int
    infotext: str
    image: Image.Image | None = None
    latents: torch.Tensor | None = None


@dataclass(frozen=True)
class _Job:
    """Requests that can share one sampling run: same size, steps, sampler, CFG, clip skip, ENSD and chunk counts."""

    indices: list[int]
    cond_ids: torch.Tensor  # [B, k, 77]
    uncond_ids: torch.Tensor  # [B, k', 77]
    cond_weights: torch.Tensor  # [B, k, 77]: A1111 emphasis, (word:1.2) and friends
    uncond_weights: torch.Tensor  # [B, k', 77]

    def halves(self) -> list["_Job"]:
        cut = len(self.indices) // 2
        return [_Job(self.indices[part], self.cond_ids[part], self.uncond_ids[part], self.cond_weights[part],
                     self.uncond_weights[part]) for part in (slice(0, cut), slice(cut, None))]


def generate(model: SDModel, requests: Sequence[GenerationRequest], *, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None, batch_size: int = 1, output: Literal["pil", "latents"] = "pil",
             progress: bool = False, identity: ModelIdentity | None = None) -> list[GeneratedImage]:
    """Generate every request; results come back in request order, a request's `n_images` images in a row.

    Image i of a request with seed s has seed s + i, as in A1111 (a random seed is drawn once per request).

    `device`: where to run (default: where the UNet is); modules elsewhere are moved there and back.
    `dtype`: autocast precision (None or float32: run in the modules' own dtypes). `batch_size`: images per UNet pass
    (the UNet sees twice as many rows, for CFG). `identity`: the infotext's `Model hash`/`Model`; by default
    those of `model.source` (pass one when sampling a model mid-training, which is no longer that file).
    """
    if output not in ("pil", "latents"):
        raise ValueError(f"output must be 'pil' or 'latents', got {output!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    from tqdm import tqdm

    device = torch.device(device) if device is not None else next(model.unet.parameters()).device
    identity = identity if identity is not None else ModelIdentity.of_file(model.source)
    requests, seeds = _per_image(requests)
    results: list[GeneratedImage | None] = [None] * len(requests)
    with _inference_state(model, device):
        jobs = _plan(model, requests, batch_size, device, dtype)
        steps = sum(_model_calls(requests[job.indices[0]]) * len(job.indices) for job in jobs)
        with tqdm(total=steps, desc="generating", unit="image-step", disable=not progress) as bar:
            for job in jobs:
                latents = _run_job(model, job, requests, seeds, device, dtype, bar.update)
                images = to_pil(decode_latents(model.vae, latents)) if output == "pil" else [None] * len(latents)
                for i, latent, image in zip(job.indices, latents, images):
                    results[i] = GeneratedImage(requests[i], seeds[i], infotext(requests[i], seeds[i], identity),
                                                image=image, latents=latent if output == "latents" else None)
    return results


def _per_image(requests: Sequence[GenerationRequest]) -> tuple[list[GenerationRequest], list[int]]:
    """Each request repeated `n_images` times, with A1111's seeds: seed, seed + 1, …"""
    pairs = [(r, base + i) for r in requests for base in [resolve_seed(r.seed)] for i in range(r.n_images)]
    return [r for r, _ in pairs], [seed for _, seed in pairs]


def _model_calls(request: GenerationRequest) -> int:
    """Guided model evaluations of one sampling run (A1111's DDIM makes one fewer than its timesteps)."""
    return SIGMA_SAMPLERS[sampler_key(request.sampler)].model_calls(request.steps)


def images_that_fit(free_bytes: int, width: int, height: int, element_bytes: int) -> int:
    """How many images (each a cond + uncond row) one UNet pass can take within 80% of `free_bytes`.

    A heuristic from SD1.5 at 512x512: about 0.2 GB of activations per row in fp16 with SDPA, scaling with the
    latent area. Too optimistic a guess is caught by `_run_job`, which halves a batch that runs out of memory."""
    per_image = 2 * 0.2e9 * (width * height) / (512 * 512) * element_bytes / 2
    return max(1, int(0.8 * free_bytes // per_image))


def _memory_cap(device: torch.device, width: int, height: int, dtype: torch.dtype | None) -> int:
    if device.type != "cuda":
        return 1 << 30  # no cap on the CPU: memory is not the limit there
    free, _ = torch.cuda.mem_get_info(device)
    return images_that_fit(free, width, height, torch.finfo(dtype or torch.float32).bits // 8)


def _run_job(model: SDModel, job: _Job, requests: Sequence[GenerationRequest], seeds: Sequence[int],
             device: torch.device, dtype: torch.dtype | None, on_step: Callable[[int], object]) -> torch.Tensor:
    """Sample one job; when the GPU runs out of memory, run its halves instead (each image keeps its own noise)."""
    try:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype not in (None, torch.float32)):
            return _sample(model, job, requests, seeds, device, lambda: on_step(len(job.indices)))
    except torch.cuda.OutOfMemoryError:
        if len(job.indices) == 1:
            r = requests[job.indices[0]]
            raise UserError(f"out of GPU memory for one {r.width}x{r.height} image; use a smaller size or "
                            f"fp16") from None
        torch.cuda.empty_cache()
        return torch.cat([_run_job(model, half, requests, seeds, device, dtype, on_step) for half in job.halves()])


def _plan(model: SDModel, requests: Sequence[GenerationRequest], batch_size: int, device: torch.device,
          dtype: torch.dtype | None) -> list[_Job]:
    """Parse A1111 prompt syntax, group requests that can be stacked, and cut the groups into batches."""
    groups: dict[tuple, list[tuple[int, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]]] = {}
    for i, r in enumerate(requests):
        cond = weighted_chunks(model.tokenizer, r.prompt, model.family)
        uncond = weighted_chunks(model.tokenizer, r.negative_prompt, model.family)
        key = (r.width, r.height, r.steps, sampler_key(r.sampler), r.cfg_scale, r.clip_skip, r.ensd,
               len(cond[0]), len(uncond[0]))
        groups.setdefault(key, []).append((i, cond, uncond))
    jobs = []
    for key, members in groups.items():
        size = min(batch_size, _memory_cap(device, key[0], key[1], dtype))
        for start in range(0, len(members), size):
            part = members[start:start + size]
            stack = lambda which, n: torch.stack([m[which][n] for m in part])  # noqa: E731
            jobs.append(_Job([m[0] for m in part], stack(1, 0), stack(2, 0), stack(1, 1), stack(2, 1)))
    return jobs


def _sample(model: SDModel, job: _Job, requests: Sequence[GenerationRequest], seeds: Sequence[int],
            device: torch.device, on_step: Callable[[], object]) -> torch.Tensor:
    """Latents `[B, 4, h/8, w/8]` (float32) of one job."""
    first = requests[job.indices[0]]
    unet, te = model.unet, model.text_encoder
    unet_dtype = next(unet.parameters()).dtype
    cond = apply_emphasis(encode_chunks(te, job.cond_ids, first.clip_skip, model.family), job.cond_weights)
    uncond = apply_emphasis(encode_chunks(te, job.uncond_ids, first.clip_skip, model.family), job.uncond_weights)
    cond, uncond = cond.to(unet_dtype), uncond.to(unet_dtype)

    def unet_fn(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return unet(x.to(unet_dtype), t, encoder_hidden_states=text).sample.float()

    sampler = SIGMA_SAMPLERS[sampler_key(first.sampler)]
    denoiser, sigmas = sampler.prepare(unet_fn, alphas_cumprod(model.config.scheduler), model.prediction_type,
                                       first.steps, device)
    noise = ImageNoise((unet.config.in_channels, first.height // 8, first.width // 8), [seeds[i] for i in job.indices])
    x = sampler.start(noise.draw().to(device), sigmas)
    if first.ensd:
        noise.reseed([seeds[i] + first.ensd for i in job.indices])
    denoise = CFGDenoiser(denoiser, cond, uncond, first.cfg_scale)
    return sampler.sample(_counted(denoise, on_step), x, sigmas, lambda sigma, sigma_next: noise.draw().to(device))


def _counted(denoise: CFGDenoiser, on_step: Callable[[], object]) -> Callable[..., torch.Tensor]:
    """`denoise`, calling `on_step` after each model evaluation (the progress bar's tick)."""
    def counted(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        out = denoise(x, sigma)
        on_step()
        return out
    return counted


@contextlib.contextmanager
def _inference_state(model: SDModel, device: torch.device) -> Iterator[None]:
    """Eval mode, no autograd, modules on `device` and torch's RNG forked; everything put back afterwards."""
    modules = model.modules().values()
    flags = [(m, m.training) for module in modules for m in module.modules()]
    homes = [(module, next(module.parameters()).device) for module in modules]
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for module, _ in homes:
                module.to(device).eval()
            yield
    finally:
        for module, home in homes:
            module.to(home)
        for m, training in flags:
            m.training = training
