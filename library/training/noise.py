"""Training noise: Gaussian noise with kohya's offset / adaptive / multires variants, input perturbation, q(x_t | x_0).

Every draw goes through an explicit generator on the generator's own device, so one seed gives the same noise on
CPU and GPU and a saved generator state resumes the run exactly. Noise is built in float32 and cast to the latents'
dtype at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .timesteps import at_timesteps, sample_timesteps

if TYPE_CHECKING:
    from ..config import TrainConfig


def _randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32).to(device)


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, device=generator.device))


def offset_noise(latents: torch.Tensor, generator: torch.Generator, strength: float,
                 adaptive_scale: float | None = None) -> torch.Tensor:
    """Per-(sample, channel) constant noise, [B, C, 1, 1] (crosslabs "offset noise": lets the model shift the mean
    brightness). With `adaptive_scale` the strength grows by that times |channel mean of the latent| (kohya)."""
    shape = (*latents.shape[:2], *([1] * (latents.ndim - 2)))
    scale: float | torch.Tensor = strength
    if adaptive_scale is not None:
        channel_mean = latents.float().mean(dim=tuple(range(2, latents.ndim)), keepdim=True).abs()
        scale = (strength + adaptive_scale * channel_mean).clamp(min=0.0)
    return scale * _randn(shape, generator, latents.device)


def pyramid_noise(noise: torch.Tensor, generator: torch.Generator, iterations: int, discount: float) -> torch.Tensor:
    """Multires ("pyramid") noise as kohya: add upsampled noise of ever smaller random sizes (ratio 2-4 per level),
    weighted discount**level, then rescale to unit std over the batch (Whitaker 2023, multi-resolution noise)."""
    height, width = noise.shape[-2:]
    out = noise.float()
    for level in range(iterations):
        ratio = (2.0 + 2.0 * _uniform(generator)) ** level
        small_h, small_w = max(1, int(height / ratio)), max(1, int(width / ratio))
        coarse = _randn((*noise.shape[:-2], small_h, small_w), generator, noise.device)
        out = out + F.interpolate(coarse, size=(height, width), mode="bilinear") * discount ** level
        if small_h == 1 or small_w == 1:
            break
    return out / out.std()


def sample_noise(latents: torch.Tensor, generator: torch.Generator, *, noise_offset: float | None = None,
                 noise_offset_random_strength: bool = False, adaptive_noise_scale: float | None = None,
                 multires_iterations: int | None = None, multires_discount: float = 0.3) -> torch.Tensor:
    """The ε added to `latents`: N(0, I), then offset noise (strength uniform in [0, noise_offset] when random),
    then pyramid noise, in kohya's order. Zero or None switches a variant off, as in kohya."""
    noise = _randn(tuple(latents.shape), generator, latents.device)
    if noise_offset:
        strength = noise_offset * _uniform(generator) if noise_offset_random_strength else noise_offset
        noise = noise + offset_noise(latents, generator, strength, adaptive_noise_scale)
    if multires_iterations:
        noise = pyramid_noise(noise, generator, multires_iterations, multires_discount)
    return noise.to(latents.dtype)


def perturb_noise(noise: torch.Tensor, generator: torch.Generator, ip_noise_gamma: float | None,
                  random_strength: bool = False) -> torch.Tensor:
    """Input perturbation (Ning et al. 2023): ε + γ·ξ noises the input while the target stays ε, which reduces
    exposure bias. γ is drawn uniformly in [0, ip_noise_gamma] when `random_strength`. None or 0: ε unchanged."""
    if not ip_noise_gamma:
        return noise
    strength = ip_noise_gamma * _uniform(generator) if random_strength else ip_noise_gamma
    return (noise.float() + strength * _randn(tuple(noise.shape), generator, noise.device)).to(noise.dtype)


def add_noise(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
              alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Forward diffusion q(x_t | x_0) (DDPM, Ho et al. 2020): sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε, in float32."""
    alpha_bar = at_timesteps(alphas_cumprod, timesteps, latents.ndim)
    return (alpha_bar.sqrt() * latents.float() + (1.0 - alpha_bar).sqrt() * noise.float()).to(latents.dtype)


@dataclass(frozen=True)
class NoiseOptions:
    """The noise and timestep settings of a run; field names and defaults are kohya's option names and defaults."""

    noise_offset: float | None = None
    noise_offset_random_strength: bool = False
    adaptive_noise_scale: float | None = None
    multires_noise_iterations: int | None = None
    multires_noise_discount: float = 0.3
    ip_noise_gamma: float | None = None
    ip_noise_gamma_random_strength: bool = False
    min_timestep: int | None = None
    max_timestep: int | None = None

    @classmethod
    def from_config(cls, config: TrainConfig) -> NoiseOptions:
        """The same-named fields of `config.training`."""
        return cls(**{f.name: getattr(config.training, f.name) for f in fields(cls)})

    def draw(self, latents: torch.Tensor, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ε, timesteps on the latents' device, the ε the model input is noised with), drawn in this order."""
        noise = sample_noise(latents, generator, noise_offset=self.noise_offset,
                             noise_offset_random_strength=self.noise_offset_random_strength,
                             adaptive_noise_scale=self.adaptive_noise_scale,
                             multires_iterations=self.multires_noise_iterations,
                             multires_discount=self.multires_noise_discount)
        timesteps = sample_timesteps(latents.shape[0], generator, self.min_timestep, self.max_timestep)
        model_noise = perturb_noise(noise, generator, self.ip_noise_gamma, self.ip_noise_gamma_random_strength)
        return noise, timesteps.to(latents.device), model_noise
