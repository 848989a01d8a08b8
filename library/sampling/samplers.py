"""k-diffusion's samplers, step for step, so a seed gives what A1111 gives; one table, one call for all of them.

A sampler walks x from σ_0 down to σ_n with a denoiser D(x, σ): `sample_x(denoise, x, sigmas, noise_sampler=None)`,
k-diffusion's signature. Ancestral samplers add fresh noise after each step; they take it from
`noise_sampler(σ, σ_next)` instead of the global RNG, so the caller decides the seeds (A1111: one generator per
image, so an image does not depend on its batch).

DDIM is the exception: A1111 runs it (`sd_samplers_timesteps_impl.ddim`) on the UNet's own x_t and integer
timesteps with an ε-prediction, not through k-diffusion's σ. `sample_ddim` has the same signature with the
schedule given as ᾱ, and the `TimestepAdapter` entry sets up its model, schedule and start the way A1111 does, so
`generate` calls every entry of `SIGMA_SAMPLERS` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .denoiser import Conditioned, Denoiser, EpsPredictor, UNetFn
from .request import SCHEDULE_LABELS
from .schedule import ddim_timesteps, get_sigmas, karras_sigmas, sigmas_from_alphas

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,...], σ [B]) -> denoised x
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (σ, σ_next) -> noise like x


class SigmaSampler(Protocol):
    """k-diffusion's sampler signature: x at sigmas[0] in, x at sigmas[-1] out."""

    def __call__(self, denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                 noise_sampler: NoiseSampler | None = None) -> torch.Tensor: ...


def get_ancestral_step(sigma: torch.Tensor, sigma_next: torch.Tensor,
                       eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ_down, σ_up): step deterministically to σ_down, then add noise σ_up so the level lands on σ_next.

    σ_down² + σ_up² = σ_next²; η = 1 gives DDPM-like ancestral sampling, η = 0 plain Euler.
    """
    if not eta:
        return sigma_next, torch.zeros_like(sigma_next)
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def sample_euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                           noise_sampler: NoiseSampler | None = None, eta: float = 1.0,
                           s_noise: float = 1.0) -> torch.Tensor:
    """Euler a: an Euler step to σ_down, then noise up to σ_next. Draws len(sigmas) - 2 noises (none at the end).

    Without a `noise_sampler` the noise comes from torch's global RNG, as in k-diffusion.
    """
    noise_sampler = noise_sampler or (lambda sigma, sigma_next: torch.randn_like(x))
    ones = x.new_ones([x.shape[0]])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma * ones)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        x = x + _derivative(x, sigma, denoised) * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                 noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """Euler (Karras et al. 2022, Algorithm 2 without churn): deterministic, one model call per step."""
    ones = x.new_ones([x.shape[0]])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = denoise(x, sigma * ones)
        x = x + _derivative(x, sigma, denoised) * (sigma_next - sigma)
    return x


def sample_dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                    noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
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


def sample_ddim(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                noise_sampler: NoiseSampler | None = None) -> torch.Tensor:
    """DDIM with η = 0 (A1111's default `eta_ddim`), as A1111 runs it: x is the UNet's x_t, starting from pure noise.

    Here `sigmas` holds ᾱ of the timesteps walked (increasing: less noise) and `denoise(x_t, ᾱ_t)` returns the guided
    ε̂ (an `EpsPredictor`), so the step from ᾱ_t to ᾱ_t' is A1111's to the digit:
    x0 = (x − √(1−ᾱ_t)·ε̂)/√ᾱ_t,  x ← √ᾱ_t'·x0 + √(1−ᾱ_t')·ε̂.
    The result is x at the last ᾱ (the UNet's x_t there, timestep 1 in A1111), not a σ = 0 latent.
    """
    ones = x.new_ones([x.shape[0]])
    for a_t, a_prev in zip(sigmas[:-1], sigmas[1:]):
        eps = denoise(x, a_t * ones)
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


@dataclass(frozen=True)
class KDiffusion:
    """A k-diffusion sampler set up as A1111 sets it up: the CompVis denoiser on σ, and x starts at noise·σ_0.

    `karras`: the Karras schedule over the model's σ range, as A1111 1.10 gives it on "Automatic" (see
    `request.SCHEDULE_LABELS`); otherwise the uniform one.
    """

    sample: SigmaSampler
    karras: bool = False

    def model_calls(self, steps: int) -> int:
        return steps

    def prepare(self, unet: UNetFn, alphas_bar: torch.Tensor, prediction_type: str, steps: int,
                device: torch.device) -> tuple[Conditioned, torch.Tensor]:
        """The denoiser and its schedule `sigmas` on `device`."""
        model_sigmas = sigmas_from_alphas(alphas_bar).to(device)
        if self.karras:
            sigmas = karras_sigmas(steps, model_sigmas[0].item(), model_sigmas[-1].item()).to(device)
        else:
            sigmas = get_sigmas(model_sigmas, steps)
        return Denoiser(unet, model_sigmas, prediction_type), sigmas

    def start(self, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """x at σ_0, k-diffusion's (and A1111's default) start."""
        return noise * sigmas[0]


@dataclass(frozen=True)
class TimestepAdapter:
    """A1111's timestep DDIM behind the same entry: the ε-predicting UNet at integer timesteps, its schedule as ᾱ
    of A1111's DDIM timesteps (`ddim_timesteps`), and x starting at the noise itself (the UNet's x_t)."""

    sample: SigmaSampler

    def model_calls(self, steps: int) -> int:
        """One fewer than the timesteps: 19 for 20 steps."""
        return len(ddim_timesteps(steps)) - 1

    def prepare(self, unet: UNetFn, alphas_bar: torch.Tensor, prediction_type: str, steps: int,
                device: torch.device) -> tuple[Conditioned, torch.Tensor]:
        """The ε-predictor and its schedule, ᾱ from the last DDIM timestep to the first, on `device`."""
        alphas_bar = alphas_bar.to(device)
        timesteps = ddim_timesteps(steps, len(alphas_bar))
        return EpsPredictor(unet, alphas_bar, prediction_type), alphas_bar[timesteps.flip(0)]

    def start(self, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """The noise itself, as A1111 starts DDIM (scaling by σ_0 and back would round some values off)."""
        return noise


# Every sampler, keyed like `config.sampler_names.SAMPLER_LABELS` (which names them without importing torch).
# A k-diffusion entry's schedule is the one `SCHEDULE_LABELS` names (and the infotext writes).
SIGMA_SAMPLERS: dict[str, KDiffusion | TimestepAdapter] = {
    **{key: KDiffusion(sample, karras=SCHEDULE_LABELS.get(key) == "Karras")
       for key, sample in (("euler_a", sample_euler_ancestral), ("euler", sample_euler),
                           ("dpmpp_2m", sample_dpmpp_2m))},
    "ddim": TimestepAdapter(sample_ddim),
}
