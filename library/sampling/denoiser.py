"""The UNet as a denoiser D(x, σ) ≈ clean latent, the form k-diffusion samplers (and so A1111) work with.

The sampler's x is x_t / sqrt(ᾱ_t), noise level σ. The UNet wants x_t itself and a timestep, and predicts
ε or v; the scalings below convert both ways (k-diffusion `CompVisDenoiser` / `CompVisVDenoiser`, σ_data = 1):

    eps:  D = x·1 + ε̂·(−σ)                                c_in = 1/sqrt(σ²+1)
    v:    D = x·1/(σ²+1) + v̂·(−σ/sqrt(σ²+1))               c_in = 1/sqrt(σ²+1)

Classifier-free guidance mixes the denoised outputs, as A1111 does: uncond + scale·(cond − uncond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .schedule import sigma_to_t

UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t, text) -> ε̂ or v̂
Conditioned = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x, σ or t, text) -> output


def scalings(sigma: torch.Tensor, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) so that D(x, σ) = c_skip·x + c_out·UNet(c_in·x, t(σ))."""
    c_in = 1 / (sigma ** 2 + 1) ** 0.5
    if prediction_type == "epsilon":
        return torch.ones_like(sigma), -sigma, c_in
    if prediction_type == "v_prediction":
        return 1 / (sigma ** 2 + 1), -sigma / (sigma ** 2 + 1) ** 0.5, c_in
    raise ValueError(f"unknown prediction type {prediction_type!r}")


@dataclass(frozen=True)
class Denoiser:
    """D(x, σ, text) for one model: `unet` predicts ε or v from (x_t, fractional t, text states)."""

    unet: UNetFn
    model_sigmas: torch.Tensor
    prediction_type: str

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        c_skip, c_out, c_in = (_per_sample(c, x) for c in scalings(sigma, self.prediction_type))
        return self.unet(x * c_in, sigma_to_t(self.model_sigmas, sigma), text) * c_out + x * c_skip


@dataclass(frozen=True)
class EpsPredictor:
    """ε̂(x_t, ᾱ_t, text) at the UNet's own x_t and timesteps, for DDIM (A1111's `CompVisTimestepsDenoiser`).

    It is called with ᾱ_t, not t, so DDIM's step reads the same ᾱ the UNet was run at; ᾱ_t must be an entry of
    `alphas_bar`, whose index is the integer timestep. v models are converted as A1111's
    `CompVisTimestepsVDenoiser` does: ε̂ = √ᾱ_t·v̂ + √(1−ᾱ_t)·x_t.
    """

    unet: UNetFn
    alphas_bar: torch.Tensor
    prediction_type: str

    def __call__(self, x: torch.Tensor, alpha_bar: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        out = self.unet(x, self.timestep_of(alpha_bar).to(x.dtype), text)
        if self.prediction_type == "epsilon":
            return out
        if self.prediction_type == "v_prediction":
            a = _per_sample(alpha_bar, x)
            return a.sqrt() * out + (1 - a).sqrt() * x
        raise ValueError(f"unknown prediction type {self.prediction_type!r}")

    def timestep_of(self, alpha_bar: torch.Tensor) -> torch.Tensor:
        """The integer timesteps whose ᾱ are `alpha_bar` (ᾱ falls strictly with t, so each has one)."""
        return len(self.alphas_bar) - 1 - torch.searchsorted(self.alphas_bar.flip(0), alpha_bar)


@dataclass(frozen=True)
class CFGDenoiser:
    """D(x, σ) with classifier-free guidance; cond and uncond share one UNet call when their lengths agree.

    A prompt and a negative prompt with different chunk counts cannot be stacked; they run as two calls,
    as A1111 does by default. `denoiser` may also be an `EpsPredictor` (DDIM): A1111 mixes its ε̂ the same way.
    At scale 1 the mix is the cond output alone, so the uncond pass is skipped (as ComfyUI does): half the work,
    the same result up to float rounding.
    """

    denoiser: Conditioned
    cond: torch.Tensor
    uncond: torch.Tensor
    scale: float

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return self.denoiser(x, sigma, self.cond)
        if self.cond.shape[1] == self.uncond.shape[1]:
            both = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([self.cond, self.uncond]))
            cond, uncond = both.chunk(2)
        else:
            cond, uncond = self.denoiser(x, sigma, self.cond), self.denoiser(x, sigma, self.uncond)
        return uncond + (cond - uncond) * self.scale


def _per_sample(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample scalar `[B]` shaped to broadcast over x `[B, C, H, W]`."""
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))
