"""k-diffusion's samplers, step for step, so a seed gives what A1111 gives.

A sampler walks x from σ_0 down to σ_n = 0 with a denoiser D(x, σ). Ancestral samplers add fresh noise
after each step; they take it from `noise_sampler(σ, σ_next)` instead of the global RNG, so the caller
decides the seeds (A1111: one generator per image, so an image does not depend on its batch).

DDIM is the exception: A1111 runs it (`sd_samplers_timesteps_impl.ddim`) on the UNet's own x_t and integer
timesteps with an ε-prediction, not through k-diffusion's σ; `sample_ddim` follows that.
"""

from __future__ import annotations

from typing import Callable

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,...], σ [B]) -> denoised x
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (σ, σ_next) -> noise like x
Sampler = Callable[[Denoise, torch.Tensor, torch.Tensor, NoiseSampler], torch.Tensor]
PredictEps = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B,...], t [B]) -> ε̂


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


def sample_dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022), k-diffusion's `sample_dpmpp_2m`: in t = −log σ, h = t_next − t,

    x ← (σ_next/σ)·x − (e^{−h} − 1)·D', with D' = D on the first step and the step to σ = 0, otherwise
    D' = (1 + 1/(2r))·D − 1/(2r)·D_prev, r = h_prev/h (a second-order extrapolation of the denoised outputs).
    """
    ones = x.new_ones([x.shape[0]])
    old_denoised, h_last = None, None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma * ones)
        t, t_next = _t_of(sigma), _t_of(sigma_next)
        h = t_next - t
        if old_denoised is not None and sigma_next > 0:
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        else:
            denoised_d = denoised
        x = (_sigma_of(t_next) / _sigma_of(t)) * x - (-h).expm1() * denoised_d
        old_denoised, h_last = denoised, h
    return x


def sample_ddim(predict_eps: PredictEps, x: torch.Tensor, alphas_bar: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
    """DDIM with η = 0 (A1111's default `eta_ddim`), as A1111 runs it: x is the UNet's x_t, starting from pure noise.

    Walking the increasing `timesteps` backwards, from t = timesteps[k] to t' = timesteps[k−1]:
    x0 = (x − √(1−ᾱ_t)·ε̂)/√ᾱ_t,  x ← √ᾱ_t'·x0 + √(1−ᾱ_t')·ε̂.
    The result is x at timesteps[0] (the UNet's x_t there), not a σ = 0 latent.
    """
    ones = x.new_ones([x.shape[0]])
    for index in range(len(timesteps) - 1, 0, -1):
        eps = predict_eps(x, timesteps[index].item() * ones)
        a_t, a_prev = alphas_bar[timesteps[index]], alphas_bar[timesteps[index - 1]]
        pred_x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * eps
    return x


def _t_of(sigma: torch.Tensor) -> torch.Tensor:
    """DPM-Solver's time variable t = −log σ (σ = 0 gives +inf)."""
    return sigma.log().neg()


def _sigma_of(t: torch.Tensor) -> torch.Tensor:
    """σ = e^{−t}."""
    return t.neg().exp()


def _derivative(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """dx/dσ of the probability-flow ODE: (x − D(x, σ)) / σ."""
    return (x - denoised) / sigma


# The k-diffusion (σ-space) samplers, keyed like `request.SAMPLER_LABELS`, which names them without importing
# torch; "ddim" works on timesteps instead (`sample_ddim`, in TIMESTEP_SAMPLERS).
SAMPLERS: dict[str, Sampler] = {
    "euler_a": sample_euler_ancestral,
    "euler": lambda denoise, x, sigmas, _noise_sampler: sample_euler(denoise, x, sigmas),
    "dpmpp_2m": lambda denoise, x, sigmas, _noise_sampler: sample_dpmpp_2m(denoise, x, sigmas),
}
TIMESTEP_SAMPLERS = {"ddim": sample_ddim}
