"""The DDPM noise schedule SD was trained with, computed exactly as LDM does (float64, stored float32).

Training (noise, targets, SNR weights) and sampling (k-diffusion sigmas) both start from `alphas_cumprod`,
so they share this one definition.
"""

from __future__ import annotations

import torch


def alphas_cumprod(scheduler_config: dict) -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 from a diffusers scheduler config (SD: scaled_linear 0.00085..0.012, T=1000)."""
    steps = int(scheduler_config.get("num_train_timesteps", 1000))
    start = float(scheduler_config.get("beta_start", 0.00085))
    end = float(scheduler_config.get("beta_end", 0.012))
    kind = scheduler_config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, steps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        raise ValueError(f"unsupported beta_schedule {kind!r} (SD uses scaled_linear)")
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def rescale_zero_terminal_snr(alphas_bar: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023: shift and scale sqrt(ᾱ) so the last step has zero SNR (pure noise)."""
    root = alphas_bar.double().sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    return (root ** 2).to(torch.float32)


# k-diffusion's view of the same schedule: noise levels σ instead of timesteps (its "CompVis denoiser").
# `model_sigmas` below is the table σ_t for t = 0..T-1, increasing; samplers walk a decreasing schedule.


def sigmas_from_alphas(alphas_bar: torch.Tensor) -> torch.Tensor:
    """σ_t = sqrt((1 - ᾱ_t) / ᾱ_t): the noise level of x_t / sqrt(ᾱ_t), which is what k-diffusion samples."""
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


def sigma_to_t(model_sigmas: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The fractional timestep of `sigma`: linear interpolation in log σ between the two nearest table entries.

    Values outside the table clamp to t = 0 or T-1. A1111 feeds these fractional t to the UNet.
    """
    log_sigmas = model_sigmas.log()
    log_sigma = sigma.log()
    low = (torch.searchsorted(log_sigmas, log_sigma.reshape(-1), right=True) - 1).clamp(0, len(log_sigmas) - 2)
    low = low.reshape(sigma.shape)
    high = low + 1
    w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high])).clamp(0, 1)
    return (1 - w) * low + w * high


def t_to_sigma(model_sigmas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """σ at a fractional timestep: log σ interpolated between the table entries at floor(t) and ceil(t)."""
    t = t.float()
    log_sigmas = model_sigmas.log()
    w = t.frac()
    return ((1 - w) * log_sigmas[t.floor().long()] + w * log_sigmas[t.ceil().long()]).exp()


def get_sigmas(model_sigmas: torch.Tensor, n: int) -> torch.Tensor:
    """A1111's "Automatic"/uniform schedule: n timesteps evenly spaced from T-1 down to 0, then σ = 0 appended."""
    t = torch.linspace(len(model_sigmas) - 1, 0, n, device=model_sigmas.device)
    return _append_zero(t_to_sigma(model_sigmas, t))


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022: σ evenly spaced in σ^(1/ρ) from σ_max to σ_min, then 0 appended."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """A1111's DDIM timesteps (`CompVisSampler.get_timesteps`): 1, 1+c, 1+2c, … below T with c = T // steps.

    The sampler walks them from the last down to the first, one model call per gap, so it makes
    len − 1 calls (19 for 20 steps: c = 50 gives 20 timesteps) and ends at ᾱ of timestep 1, not at 0.
    """
    return (torch.arange(0, num_train_timesteps, num_train_timesteps // steps) + 1).clamp(0, num_train_timesteps - 1)


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """Samplers end at σ = 0, the clean image."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])
