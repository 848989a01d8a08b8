"""Diffusion training loss: the target, the elementwise loss, the per-timestep weightings, and their composition.

Formulas follow kohya's train_util / custom_train_functions so a kohya config trains the same objective; each
function names the idea it implements. All weights are per sample ([B]) and multiply the per-sample loss, so
their order does not matter. Computed in float32 whatever the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from ..sampling.schedule import sigmas_from_alphas
from .timesteps import at_timesteps

if TYPE_CHECKING:
    from ..config.train_config import TrainConfig

PredictionType = Literal["epsilon", "v_prediction"]
LossType = Literal["l1", "l2", "huber", "smooth_l1"]
HuberSchedule = Literal["constant", "exponential", "snr"]

# kohya caps SNR at 1000 where it divides by it (SNR(0) ≈ 1175 for SD); the symmetric floor keeps the weights
# finite under zero_terminal_snr, where SNR(T) = 0. SD's own smallest SNR (≈ 0.0047) lies inside the bounds.
_SNR_BOUNDS = (1e-3, 1e3)


def _check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', not {prediction_type!r}")


def training_target(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                    alphas_cumprod: torch.Tensor, prediction_type: PredictionType) -> torch.Tensor:
    """What the U-Net learns to output: ε, or v = sqrt(ᾱ)·ε − sqrt(1 − ᾱ)·x_0 (Salimans & Ho 2022), float32."""
    _check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return noise.float()
    alpha_bar = at_timesteps(alphas_cumprod, timesteps, latents.ndim)
    return alpha_bar.sqrt() * noise.float() - (1.0 - alpha_bar).sqrt() * latents.float()


def elementwise_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: LossType,
                     huber_c: torch.Tensor | None = None) -> torch.Tensor:
    """Unreduced loss. huber = 2c(sqrt(d² + c²) − c) and smooth_l1 = 2(sqrt(d² + c²) − c): kohya's pseudo-Huber
    forms (Khrapov et al. 2024, "Improving diffusion models' data-corruption resistance using scheduled pseudo-Huber
    loss"), c per sample; huber → d² for large c and → 2c|d| for small c."""
    diff = pred.float() - target.float()
    if loss_type == "l2":
        return diff ** 2
    if loss_type == "l1":
        return diff.abs()
    if loss_type not in ("huber", "smooth_l1"):
        raise ValueError(f"loss_type must be l1, l2, huber or smooth_l1, not {loss_type!r}")
    if huber_c is None:
        raise ValueError(f"loss_type {loss_type} needs huber_c per sample")
    c = huber_c.float().view(-1, *([1] * (diff.ndim - 1)))
    square = diff ** 2
    # sqrt(d² + c²) − c written as d² / (sqrt(d² + c²) + c): the same value without float32 cancellation at large c
    pseudo = square / (torch.sqrt(square + c ** 2) + c).clamp(min=torch.finfo(torch.float32).tiny)
    return 2 * c * pseudo if loss_type == "huber" else 2 * pseudo


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: LossType,
                    huber_c_per_sample: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Loss per sample, [B]: the elementwise loss, times `mask` (kohya's masked_loss: [B, 1, h, w] in 0..1,
    area-resized to the latent size), averaged over C, H, W (a masked-out region counts as zero loss, as kohya)."""
    loss = elementwise_loss(pred, target, loss_type, huber_c_per_sample)
    if mask is not None:
        loss = loss * F.interpolate(mask.float(), size=loss.shape[2:], mode="area")
    return loss.mean(dim=tuple(range(1, loss.ndim)))


def snr(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ / (1 − ᾱ) per sample, [B]."""
    alpha_bar = at_timesteps(alphas_cumprod, timesteps)
    return alpha_bar / (1.0 - alpha_bar)


def _bounded_snr(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    return snr(timesteps, alphas_cumprod).clamp(*_SNR_BOUNDS)


def huber_c(timesteps: torch.Tensor, schedule: HuberSchedule, c: float, scale: float,
            alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Per-sample Huber c as kohya: constant c·scale; exponential c^(t/T)·scale (kohya's exp(log(c)·t/T));
    snr (1 − c)/(1 + σ)² + c with σ = sqrt((1 − ᾱ)/ᾱ), near 1 at low noise and c at high noise (no scale there,
    as kohya)."""
    t = timesteps.float()
    if schedule == "constant":
        return torch.full_like(t, c * scale)
    if schedule == "exponential":
        return c ** (t / len(alphas_cumprod)) * scale
    if schedule == "snr":
        sigma = sigmas_from_alphas(at_timesteps(alphas_cumprod, timesteps))
        return (1.0 - c) / (1.0 + sigma) ** 2 + c
    raise ValueError(f"huber_schedule must be constant, exponential or snr, not {schedule!r}")


def min_snr_weight(timesteps: torch.Tensor, gamma: float, alphas_cumprod: torch.Tensor,
                   prediction_type: PredictionType) -> torch.Tensor:
    """Min-SNR-γ weighting (Hang et al. 2023): min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v (kohya).
    The ε form is computed as γ/max(SNR, γ), the same value, finite at SNR = 0."""
    _check_prediction_type(prediction_type)
    ratio = snr(timesteps, alphas_cumprod)
    if prediction_type == "epsilon":
        return gamma / ratio.clamp(min=gamma)
    return ratio.clamp(max=gamma) / (ratio + 1.0)


def scale_v_like_noise(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR/(SNR + 1): the v loss scaled to the ε loss's magnitude (|v − v̂|² = (SNR + 1)/SNR · |ε − ε̂|²), kohya."""
    ratio = _bounded_snr(timesteps, alphas_cumprod)
    return ratio / (ratio + 1.0)


def v_pred_like_loss(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, strength: float) -> torch.Tensor:
    """1 + strength·(SNR + 1)/SNR: kohya's add_v_prediction_like_loss, loss + strength·(ε loss rescaled like v)."""
    return 1.0 + strength / scale_v_like_noise(timesteps, alphas_cumprod)


def debiased_weight(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
                    prediction_type: PredictionType) -> torch.Tensor:
    """Debiased estimation (Yu et al. 2023, "Debias the training of diffusion models"): 1/sqrt(SNR) for ε,
    1/(SNR + 1) for v, as kohya."""
    _check_prediction_type(prediction_type)
    ratio = _bounded_snr(timesteps, alphas_cumprod)
    return ratio.rsqrt() if prediction_type == "epsilon" else 1.0 / (ratio + 1.0)


@dataclass(frozen=True)
class LossOptions:
    """The loss settings of a run; field names and defaults are kohya's option names and defaults."""

    loss_type: LossType = "l2"
    huber_schedule: HuberSchedule = "snr"
    huber_c: float = 0.1
    huber_scale: float = 1.0
    min_snr_gamma: float | None = None
    scale_v_pred_loss_like_noise_pred: bool = False
    v_pred_like_loss: float | None = None
    debiased_estimation_loss: bool = False

    @classmethod
    def from_config(cls, config: TrainConfig) -> LossOptions:
        """The same-named fields of `config.training`."""
        return cls(**{f.name: getattr(config.training, f.name) for f in fields(cls)})


def timestep_weight(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: PredictionType,
                    options: LossOptions) -> torch.Tensor:
    """Product of the enabled per-timestep weightings, [B] (all ones when none is on). Zero or None is off (kohya)."""
    weight = torch.ones(timesteps.shape, dtype=torch.float32, device=timesteps.device)
    if options.min_snr_gamma:
        weight = weight * min_snr_weight(timesteps, options.min_snr_gamma, alphas_cumprod, prediction_type)
    if options.scale_v_pred_loss_like_noise_pred:
        weight = weight * scale_v_like_noise(timesteps, alphas_cumprod)
    if options.v_pred_like_loss:
        weight = weight * v_pred_like_loss(timesteps, alphas_cumprod, options.v_pred_like_loss)
    if options.debiased_estimation_loss:
        weight = weight * debiased_weight(timesteps, alphas_cumprod, prediction_type)
    return weight


def diffusion_loss(pred: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, *,
                   alphas_cumprod: torch.Tensor, prediction_type: PredictionType, options: LossOptions,
                   sample_weights: torch.Tensor, mask: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of one batch: (scalar, per-sample [B]) with scalar = per_sample.mean().

    per_sample = loss(pred, target) · timestep weights · sample_weights (prior_loss_weight, regularization mixing).
    `noise` is the ε the target is built from (before input perturbation); `latents` are the clean x_0."""
    target = training_target(latents, noise, timesteps, alphas_cumprod, prediction_type)
    c = None
    if options.loss_type in ("huber", "smooth_l1"):
        c = huber_c(timesteps, options.huber_schedule, options.huber_c, options.huber_scale, alphas_cumprod)
    per_sample = (per_sample_loss(pred, target, options.loss_type, c, mask)
                  * timestep_weight(timesteps, alphas_cumprod, prediction_type, options)
                  * sample_weights.to(device=pred.device, dtype=torch.float32))
    return per_sample.mean(), per_sample
