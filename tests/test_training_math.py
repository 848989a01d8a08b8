"""Noise, timesteps and losses against hand computations on small tensors (and diffusers where it has the formula)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from library.config.train_config import TrainConfig
from library.errors import UserError
from library.sampling.schedule import alphas_cumprod, rescale_zero_terminal_snr
from library.training.losses import (
    LossOptions, debiased_weight, diffusion_loss, huber_c, min_snr_weight, per_sample_loss, scale_v_like_noise, snr,
    timestep_weight, training_target, v_pred_like_loss,
)
from library.training.noise import add_noise, perturb_noise, pyramid_noise, sample_noise
from library.training.timesteps import at_timesteps, sample_timesteps

AC = alphas_cumprod({})
SHAPE = (2, 4, 8, 8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def latents(seed: int = 5) -> torch.Tensor:
    return torch.randn(SHAPE, generator=gen(seed)) + torch.tensor([0.5, -1.0, 0.0, 2.0]).view(1, 4, 1, 1)


# ---- noise -------------------------------------------------------------------------------------------------------

def test_plain_noise_is_the_generators_gaussian():
    assert torch.equal(sample_noise(latents(), gen(3)), torch.randn(SHAPE, generator=gen(3)))


@pytest.mark.parametrize("options", [
    {}, {"noise_offset": 0.1, "noise_offset_random_strength": True, "adaptive_noise_scale": 0.02},
    {"multires_iterations": 6, "multires_discount": 0.3},
])
def test_same_seed_same_noise(options):
    first, again, other = (sample_noise(latents(), gen(s), **options) for s in (7, 7, 8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_noise_keeps_the_latent_dtype_and_device():
    noise = sample_noise(latents().half(), gen(), noise_offset=0.1, multires_iterations=3)
    assert noise.dtype == torch.float16 and noise.shape == SHAPE


def test_offset_noise_adds_one_constant_per_sample_and_channel():
    g = gen(1)
    base = torch.randn(SHAPE, generator=g)
    offset = torch.randn(2, 4, 1, 1, generator=g)
    noise = sample_noise(latents(), gen(1), noise_offset=0.1)
    torch.testing.assert_close(noise, base + 0.1 * offset)
    shift = (noise - base).mean(dim=(2, 3))
    assert shift.abs().min() > 0 and torch.allclose(noise - base, shift[..., None, None].expand(SHAPE), atol=1e-6)


def test_adaptive_and_random_offset_strength():
    x = latents()
    g = gen(2)
    base = torch.randn(SHAPE, generator=g)
    u = torch.rand((), generator=g)
    offset = torch.randn(2, 4, 1, 1, generator=g)
    strength = 0.1 * u + 0.05 * x.mean(dim=(2, 3), keepdim=True).abs()
    noise = sample_noise(x, gen(2), noise_offset=0.1, noise_offset_random_strength=True, adaptive_noise_scale=0.05)
    torch.testing.assert_close(noise, base + strength * offset)


def test_adaptive_offset_is_clamped_at_zero():
    x = latents()
    g = gen(4)
    base = torch.randn(SHAPE, generator=g)
    torch.randn(2, 4, 1, 1, generator=g)
    # a large negative adaptive scale drives every channel's strength below 0: clamped, so no offset at all
    torch.testing.assert_close(sample_noise(x, gen(4), noise_offset=0.01, adaptive_noise_scale=-10.0), base)


def test_zero_switches_variants_off_as_kohya():
    plain = sample_noise(latents(), gen(9))
    assert torch.equal(sample_noise(latents(), gen(9), noise_offset=0.0, multires_iterations=0), plain)


def test_multires_noise_is_unit_std_and_low_frequency():
    white = torch.randn(4, 4, 64, 64, generator=gen(1))
    noise = pyramid_noise(white, gen(2), iterations=8, discount=0.8)
    assert noise.shape == white.shape
    assert noise.std().item() == pytest.approx(1.0, abs=1e-5)

    def neighbour_correlation(x):
        return torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1].item()

    assert abs(neighbour_correlation(white)) < 0.05
    assert neighbour_correlation(noise) > 0.3


def test_multires_stops_at_one_pixel():
    noise = pyramid_noise(torch.randn(1, 1, 4, 4, generator=gen()), gen(1), iterations=50, discount=0.5)
    assert torch.isfinite(noise).all()


def test_input_perturbation():
    noise = torch.randn(SHAPE, generator=gen(1))
    assert perturb_noise(noise, gen(), None) is noise and perturb_noise(noise, gen(), 0.0) is noise
    torch.testing.assert_close(perturb_noise(noise, gen(3), 0.1), noise + 0.1 * torch.randn(SHAPE, generator=gen(3)))
    g = gen(3)
    u = torch.rand((), generator=g)
    expected = noise + 0.1 * u * torch.randn(SHAPE, generator=g)
    torch.testing.assert_close(perturb_noise(noise, gen(3), 0.1, random_strength=True), expected)


def test_add_noise_is_the_forward_process():
    x, eps, t = latents(), torch.randn(SHAPE, generator=gen(1)), torch.tensor([0, 999])
    noisy = add_noise(x, eps, t, AC)
    for i in range(2):
        a = AC[t[i]].item()
        torch.testing.assert_close(noisy[i], math.sqrt(a) * x[i] + math.sqrt(1 - a) * eps[i])
    from diffusers import DDPMScheduler
    ddpm = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    t = torch.tensor([10, 500])
    torch.testing.assert_close(add_noise(x, eps, t, AC), ddpm.add_noise(x, eps, t))


# ---- timesteps ---------------------------------------------------------------------------------------------------

def test_timesteps_range_and_reproducibility():
    t = sample_timesteps(4000, gen(1), min_timestep=100, max_timestep=200)
    assert t.dtype == torch.long and t.min() == 100 and t.max() == 199
    assert torch.equal(t, sample_timesteps(4000, gen(1), min_timestep=100, max_timestep=200))
    full = sample_timesteps(4000, gen(2))
    assert full.min() >= 0 and full.max() <= 999 and full.max() > 990


def test_equal_bounds_train_one_timestep_and_bad_bounds_are_errors():
    assert sample_timesteps(3, gen(), min_timestep=500, max_timestep=500).tolist() == [500] * 3
    for low, high in ((600, 500), (1000, 1000), (0, 1001)):
        with pytest.raises(UserError, match="timestep range"):
            sample_timesteps(3, gen(), min_timestep=low, max_timestep=high)


def test_at_timesteps_broadcasts():
    values = at_timesteps(torch.arange(10.0), torch.tensor([3, 7]), ndim=4)
    assert values.shape == (2, 1, 1, 1) and values.flatten().tolist() == [3.0, 7.0]


# ---- targets and losses ------------------------------------------------------------------------------------------

def test_v_target_recovers_x0_and_eps():
    x, eps, t = latents(), torch.randn(SHAPE, generator=gen(1)), torch.tensor([50, 900])
    assert torch.equal(training_target(x, eps, t, AC, "epsilon"), eps)
    v = training_target(x, eps, t, AC, "v_prediction")
    xt = add_noise(x, eps, t, AC)
    a = at_timesteps(AC, t, 4)
    torch.testing.assert_close(a.sqrt() * xt - (1 - a).sqrt() * v, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close((1 - a).sqrt() * xt + a.sqrt() * v, eps, atol=1e-5, rtol=1e-5)
    from diffusers import DDPMScheduler
    ddpm = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(v, ddpm.get_velocity(x, eps, t))
    with pytest.raises(ValueError, match="prediction_type"):
        training_target(x, eps, t, AC, "sample")


def test_per_sample_losses_by_hand():
    pred = torch.tensor([[[[1.0, -2.0]]], [[[0.5, 0.0]]]])  # [2, 1, 1, 2]
    target = torch.zeros_like(pred)
    assert per_sample_loss(pred, target, "l2").tolist() == [2.5, 0.125]
    assert per_sample_loss(pred, target, "l1").tolist() == [1.5, 0.25]
    c = torch.tensor([1.0, 0.5])
    h = lambda d, c: 2 * c * (math.sqrt(d * d + c * c) - c)  # noqa: E731
    expected = [(h(1, 1) + h(2, 1)) / 2, (h(0.5, 0.5) + h(0, 0.5)) / 2]
    torch.testing.assert_close(per_sample_loss(pred, target, "huber", c), torch.tensor(expected))
    smooth = [(2 * (math.sqrt(2) - 1) + 2 * (math.sqrt(5) - 1)) / 2, (2 * (math.sqrt(0.5) - 0.5)) / 2]
    torch.testing.assert_close(per_sample_loss(pred, target, "smooth_l1", c), torch.tensor(smooth))
    with pytest.raises(ValueError, match="huber_c"):
        per_sample_loss(pred, target, "huber")


def test_huber_limits():
    pred, target = torch.randn(SHAPE, generator=gen(1)), torch.zeros(SHAPE)
    l2, l1 = per_sample_loss(pred, target, "l2"), per_sample_loss(pred, target, "l1")
    big, small = torch.full((2,), 1e3), torch.full((2,), 1e-4)
    torch.testing.assert_close(per_sample_loss(pred, target, "huber", big), l2, rtol=1e-4, atol=0)
    torch.testing.assert_close(per_sample_loss(pred, target, "huber", small) / (2 * 1e-4), l1, rtol=1e-3, atol=0)
    zero = torch.zeros(2)
    pred[0, 0, 0, 0] = 0.0  # d = 0 with c = 0: 0, not 0/0
    l1 = per_sample_loss(pred, target, "l1")
    torch.testing.assert_close(per_sample_loss(pred, target, "smooth_l1", zero), 2 * l1)
    assert per_sample_loss(pred, target, "huber", zero).tolist() == [0.0, 0.0]


def test_mask_scales_the_loss_like_kohya():
    pred, target = torch.ones(SHAPE), torch.zeros(SHAPE)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, :, :8] = 1.0  # left half, at twice the latent resolution
    assert per_sample_loss(pred, target, "l2", mask=mask).tolist() == [0.5, 0.5]


def test_huber_c_schedules():
    t = torch.tensor([0, 500, 1000])
    assert huber_c(t, "constant", 0.1, 2.0, AC).tolist() == pytest.approx([0.2] * 3)
    alpha = -math.log(0.1) / 1000  # kohya's form exp(-alpha t) * scale
    assert huber_c(t, "exponential", 0.1, 2.0, AC).tolist() == pytest.approx(
        [2 * math.exp(-alpha * s) for s in (0, 500, 1000)], rel=1e-6)
    t = torch.tensor([0, 999])
    sigma = ((1 - AC[t]) / AC[t]).sqrt()
    torch.testing.assert_close(huber_c(t, "snr", 0.1, 5.0, AC), 0.9 / (1 + sigma) ** 2 + 0.1)
    assert huber_c(t, "snr", 0.1, 1.0, AC)[1].item() == pytest.approx(0.1, abs=0.02)  # high noise: c
    with pytest.raises(ValueError):
        huber_c(t, "linear", 0.1, 1.0, AC)


def test_snr_and_min_snr_weights_at_known_timesteps():
    t = torch.tensor([0, 999])
    ratio = snr(t, AC)
    assert ratio[0].item() == pytest.approx(1175.44, rel=1e-4) and ratio[1].item() == pytest.approx(0.004682, rel=1e-3)
    eps = min_snr_weight(t, 5.0, AC, "epsilon")
    torch.testing.assert_close(eps, torch.stack([5.0 / ratio[0], torch.tensor(1.0)]))
    v = min_snr_weight(t, 5.0, AC, "v_prediction")
    torch.testing.assert_close(v, torch.stack([5.0 / (ratio[0] + 1), ratio[1] / (ratio[1] + 1)]))


def test_weights_stay_finite_under_zero_terminal_snr():
    zt, t = rescale_zero_terminal_snr(AC), torch.tensor([0, 999])
    assert snr(t, zt)[1].item() == 0.0
    for weight in (min_snr_weight(t, 5.0, zt, "epsilon"), min_snr_weight(t, 5.0, zt, "v_prediction"),
                   debiased_weight(t, zt, "epsilon"), v_pred_like_loss(t, zt, 0.1), scale_v_like_noise(t, zt)):
        assert torch.isfinite(weight).all()
    assert min_snr_weight(t, 5.0, zt, "epsilon")[1].item() == 1.0


def test_v_scaling_and_debiased_weights_by_hand():
    t = torch.tensor([0, 300])
    s = snr(t, AC).clamp(max=1000)  # kohya caps SNR(0) ≈ 1175 at 1000
    torch.testing.assert_close(scale_v_like_noise(t, AC), s / (s + 1))
    torch.testing.assert_close(v_pred_like_loss(t, AC, 0.2), 1 + 0.2 * (s + 1) / s)
    torch.testing.assert_close(debiased_weight(t, AC, "epsilon"), 1 / s.sqrt())
    torch.testing.assert_close(debiased_weight(t, AC, "v_prediction"), 1 / (s + 1))


def test_loss_options_from_config():
    assert LossOptions.from_config(TrainConfig()) == LossOptions()
    config = TrainConfig.from_flat({"loss_type": "huber", "huber_schedule": "constant", "min_snr_gamma": 5.0,
                                    "debiased_estimation_loss": True})
    assert LossOptions.from_config(config) == LossOptions(loss_type="huber", huber_schedule="constant",
                                                          min_snr_gamma=5.0, debiased_estimation_loss=True)


def test_diffusion_loss_defaults_to_mse_on_noise():
    pred, x, eps = (torch.randn(SHAPE, generator=gen(s)) for s in (1, 2, 3))
    t = torch.tensor([10, 700])
    loss, per_sample = diffusion_loss(pred, x, eps, t, alphas_cumprod=AC, prediction_type="epsilon",
                                      options=LossOptions(), sample_weights=torch.ones(2))
    torch.testing.assert_close(loss, F.mse_loss(pred, eps))
    torch.testing.assert_close(per_sample, ((pred - eps) ** 2).mean(dim=(1, 2, 3)))


def test_diffusion_loss_composes_weights_and_sample_weights():
    pred, x, eps = (torch.randn(SHAPE, generator=gen(s)) for s in (1, 2, 3))
    pred.requires_grad_(True)
    t = torch.tensor([0, 400])
    options = LossOptions(loss_type="huber", huber_schedule="snr", min_snr_gamma=5.0,
                          scale_v_pred_loss_like_noise_pred=True, debiased_estimation_loss=True)
    weights = torch.tensor([1.0, 0.25])
    loss, per_sample = diffusion_loss(pred, x, eps, t, alphas_cumprod=AC, prediction_type="v_prediction",
                                      options=options, sample_weights=weights)
    target = training_target(x, eps, t, AC, "v_prediction")
    raw = per_sample_loss(pred, target, "huber", huber_c(t, "snr", 0.1, 1.0, AC))
    by_time = (min_snr_weight(t, 5.0, AC, "v_prediction") * scale_v_like_noise(t, AC)
               * debiased_weight(t, AC, "v_prediction"))
    torch.testing.assert_close(timestep_weight(t, AC, "v_prediction", options), by_time)
    torch.testing.assert_close(per_sample, raw * by_time * weights)
    torch.testing.assert_close(loss, per_sample.mean())
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_zero_sample_weight_removes_a_sample():
    pred, x, eps = (torch.randn(SHAPE, generator=gen(s)) for s in (1, 2, 3))
    t = torch.tensor([5, 5])
    _, per_sample = diffusion_loss(pred, x, eps, t, alphas_cumprod=AC, prediction_type="epsilon",
                                   options=LossOptions(v_pred_like_loss=0.1), sample_weights=torch.tensor([0.0, 2.0]))
    expected = 2 * ((pred[1] - eps[1]) ** 2).mean() * v_pred_like_loss(t[1:], AC, 0.1)[0]
    assert per_sample[0].item() == 0.0
    torch.testing.assert_close(per_sample[1], expected)
