"""Test oracles: k-diffusion's Euler and Euler a as A1111 runs them, written out without the product's code.

CompVisDenoiser (σ → fractional timestep by log-σ interpolation, input scaled by 1/sqrt(σ² + 1)), uniform sigmas,
CFG on a doubled batch, CPU generator noise. The samplers' coordinates are x = x0 + σ·ε, the UNet's x_t = x/sqrt(σ²+1).
"""

from __future__ import annotations

import torch

from library.sampling.schedule import alphas_cumprod


def uniform_sigmas(log_sigmas, steps):
    """k-diffusion's `get_sigmas` for CompVisDenoiser: `steps` timesteps from 999 to 0, log-σ interpolated, then 0."""
    t = torch.linspace(999, 0, steps)
    sigmas = ((1 - t.frac()) * log_sigmas[t.floor().long()] + t.frac() * log_sigmas[t.ceil().long()]).exp()
    return torch.cat([sigmas, torch.zeros(1)])


def euler_ancestral(denoise, sigmas, x, generator):
    """k-diffusion's `sample_euler_ancestral` with η = 1: a step to σ_down, then noise up to σ_next from `generator`."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma)
        sigma_up = min(sigma_next, (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
        sigma_down = (sigma_next ** 2 - sigma_up ** 2) ** 0.5
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + torch.randn(x.shape, generator=generator) * sigma_up
    return x


def _setup(model, request):
    """(denoise(x, σ) with CFG, sigmas ending in 0, the request's seeded generator, x at σ_0)."""
    tok, te, unet = model.tokenizer, model.text_encoder, model.unet

    def encode(text):
        return te(torch.tensor([tok(text, padding="max_length").input_ids])).last_hidden_state

    cond, uncond = encode(request.prompt), encode(request.negative_prompt)
    alphas_bar = alphas_cumprod(model.config.scheduler)
    log_sigmas = (((1 - alphas_bar) / alphas_bar) ** 0.5).log()
    sigmas = uniform_sigmas(log_sigmas, request.steps)

    def denoise(x, sigma):
        s = sigma.reshape(1)
        low = (s.log() - log_sigmas[:, None]).ge(0).cumsum(0).argmax(0).clamp(max=998)
        w = ((log_sigmas[low] - s.log()) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
        timestep = (1 - w) * low + w * (low + 1)
        x_in = torch.cat([x, x]) * (1 / (sigma ** 2 + 1) ** 0.5)
        eps = unet(x_in, torch.cat([timestep, timestep]), encoder_hidden_states=torch.cat([cond, uncond])).sample
        d_cond, d_uncond = (torch.cat([x, x]) + eps * -sigma).chunk(2)
        return d_uncond + (d_cond - d_uncond) * request.cfg_scale

    generator = torch.Generator().manual_seed(request.seed)
    x = torch.randn([1, 4, request.height // 8, request.width // 8], generator=generator) * sigmas[0]
    return denoise, sigmas, generator, x


def reference_euler(model, request):
    """k-diffusion's `sample_euler` without churn (γ = 0, so σ̂ = σ)."""
    denoise, sigmas, _, x = _setup(model, request)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (x - denoise(x, sigma)) / sigma * (sigma_next - sigma)
    return x[0]


def reference_euler_a(model, request):
    """Euler a (`euler_ancestral`) on the written-out set-up, its noise from the request's seed."""
    denoise, sigmas, generator, x = _setup(model, request)
    return euler_ancestral(denoise, sigmas, x, generator)[0]
