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
