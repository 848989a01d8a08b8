"""k-diffusion's samplers, step for step, so a seed gives what A1111 gives.

A sampler walks x from σ_0 down to σ_n = 0 with a denoiser D(x, σ). Ancestral samplers add fresh noise
after each step; they take it from `noise_sampler(σ, σ_next)` instead of the global RNG, so the caller
decides the seeds (A1111: one generator per image, so an image does not depend on its batch).
"""

from __future__ import annotations

from typing import Callable

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,...], σ [B]) -> denoised x
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (σ, σ_next) -> noise like x
Sampler = Callable[[Denoise, torch.Tensor, torch.Tensor, NoiseSampler], torch.Tensor]


def get_ancestral_step(sigma: torch.Tensor, sigma_next: torch.Tensor,
                       eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ_down, σ_up): step deterministically to σ_down, then add noise σ_up so the level lands on σ_next.

    σ_down² + σ_up² = σ_next²; η = 1 gives DDPM-like ancestral sampling, η = 0 plain Euler.
    """
    if not eta:
        return sigma_next, torch.zeros_like(sigma_next)
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def sample_euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler,
                           eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    """Euler a: an Euler step to σ_down, then noise up to σ_next. Draws len(sigmas) - 2 noises (none at the end)."""
    ones = x.new_ones([x.shape[0]])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma * ones)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        x = x + _derivative(x, sigma, denoised) * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Euler (Karras et al. 2022, Algorithm 2 without churn): deterministic, one model call per step."""
    ones = x.new_ones([x.shape[0]])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma * ones)
        x = x + _derivative(x, sigma, denoised) * (sigma_next - sigma)
    return x


def _derivative(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """dx/dσ of the probability-flow ODE: (x − D(x, σ)) / σ."""
    return (x - denoised) / sigma


# Keyed like `request.SAMPLER_LABELS`, which names them without importing torch.
SAMPLERS: dict[str, Sampler] = {
    "euler_a": sample_euler_ancestral,
    "euler": lambda denoise, x, sigmas, _noise_sampler: sample_euler(denoise, x, sigmas),
}
