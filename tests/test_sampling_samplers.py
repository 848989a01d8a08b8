"""Samplers and the denoiser wrapper, checked against hand-computed steps and the exact scalings."""

import math

import pytest
import torch

from library.sampling.denoiser import CFGDenoiser, Denoiser, scalings
from library.sampling.generate import generate
from library.sampling.request import SAMPLER_LABELS, SCHEDULE_LABELS, GenerationRequest
from library.sampling.samplers import SIGMA_SAMPLERS, get_ancestral_step, sample_euler, sample_euler_ancestral
from library.sampling.schedule import alphas_cumprod, get_sigmas, sigma_to_t, sigmas_from_alphas, t_to_sigma
from library.tiny import build_tiny
from kdiffusion_reference import reference_euler

MODEL_SIGMAS = sigmas_from_alphas(alphas_cumprod({}))


def halve(x, sigma):
    """A fake denoiser: 'the clean image is half of x'."""
    return x * 0.5


def test_euler_ancestral_two_steps_by_hand():
    # σ: 2 → 1 → 0. Step 1: σ_up = sqrt(1·(4−1)/4) = 0.866…, σ_down = 0.5, d = (x − x/2)/2 = x/4,
    # x ← x + (x/4)(0.5 − 2) + ε·σ_up = 0.625x + 0.866ε. Step 2 ends at 0: σ_down = σ_up = 0, d = x/2, x ← x/2.
    x = torch.tensor([[1.0, -2.0]])
    eps = torch.tensor([[0.3, 0.7]])
    calls = []

    def noise(sigma, sigma_next):
        calls.append((sigma.item(), sigma_next.item()))
        return eps

    out = sample_euler_ancestral(halve, x, torch.tensor([2.0, 1.0, 0.0]), noise)
    torch.testing.assert_close(out, 0.5 * (0.625 * x + math.sqrt(0.75) * eps))
    assert calls == [(2.0, 1.0)]  # no noise after the last step


def test_euler_a_without_a_noise_sampler_draws_from_torchs_global_rng():
    x = torch.tensor([[1.0, -2.0]])
    torch.manual_seed(5)
    out = sample_euler_ancestral(halve, x, torch.tensor([2.0, 1.0, 0.0]))
    torch.manual_seed(5)
    torch.testing.assert_close(out, 0.5 * (0.625 * x + math.sqrt(0.75) * torch.randn(1, 2)))  # as by hand above


def test_euler_two_steps_by_hand():
    x = torch.tensor([[1.0, -2.0]])
    # 2 → 1: x + (x/4)(1 − 2) = 0.75x;  1 → 0: 0.75x + (0.375x)(0 − 1) = 0.375x
    torch.testing.assert_close(sample_euler(halve, x, torch.tensor([2.0, 1.0, 0.0])), 0.375 * x)


def test_eta_zero_makes_euler_a_deterministic_euler():
    x, sigmas = torch.randn(2, 4, 3, 3), torch.tensor([3.0, 1.5, 0.5, 0.0])
    zeros = lambda s, sn: torch.zeros_like(x)  # noqa: E731
    torch.testing.assert_close(sample_euler_ancestral(halve, x, sigmas, zeros, eta=0.0),
                               sample_euler(halve, x, sigmas))


def test_ancestral_steps_of_the_28_step_schedule_match_a1111():
    sigmas = get_sigmas(MODEL_SIGMAS, 28)
    for i, expected in enumerate([(9.436261, 6.990320), (7.755838, 5.561199)]):
        down, up = get_ancestral_step(sigmas[i], sigmas[i + 1])
        assert (down.item(), up.item()) == pytest.approx(expected, abs=1e-5)
        assert (down ** 2 + up ** 2).item() == pytest.approx(sigmas[i + 1].item() ** 2, rel=1e-5)


def test_every_sampler_has_an_a1111_label_and_runs_on_the_schedule_the_infotext_names():
    assert SIGMA_SAMPLERS.keys() == SAMPLER_LABELS.keys()
    karras = {key for key, sampler in SIGMA_SAMPLERS.items() if getattr(sampler, "karras", False)}
    assert karras == {key for key, label in SCHEDULE_LABELS.items() if label == "Karras"}


def test_euler_equals_a_direct_k_diffusion_loop():
    model = build_tiny("sd1", 0)
    request = GenerationRequest("a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=5,
                                seed=114514, cfg_scale=11, sampler="Euler")
    with torch.no_grad():
        expected = reference_euler(model, request)
    (result,) = generate(model, [request], output="latents")
    torch.testing.assert_close(result.latents, expected, rtol=0, atol=1e-6)
    assert "Sampler: Euler, CFG scale: 11," in result.infotext


# The denoiser: k-diffusion's sampler coordinates are x = x0 + σ·ε, the UNet's are x_t = x / sqrt(σ² + 1).

def oracle_unet(x0, eps, prediction_type, seen):
    """A perfect UNet for a known x0 and ε: returns the exact ε or v for its input."""
    def unet(x_t, t, text):
        seen.append((x_t, t))
        sigma = t_to_sigma(MODEL_SIGMAS, t)[:, None, None, None]
        alpha, s = 1 / (sigma ** 2 + 1).sqrt(), sigma / (sigma ** 2 + 1).sqrt()
        return eps if prediction_type == "epsilon" else alpha * eps - s * x0
    return unet


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_a_perfect_unet_makes_the_denoiser_return_the_clean_latent(prediction_type):
    x0, eps = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([7.8, 0.5])
    seen = []
    denoiser = Denoiser(oracle_unet(x0, eps, prediction_type, seen), MODEL_SIGMAS, prediction_type)
    x = x0 + sigma[:, None, None, None] * eps
    torch.testing.assert_close(denoiser(x, sigma, torch.zeros(2, 77, 8)), x0, rtol=1e-4, atol=1e-4)
    x_t, t = seen[0]
    torch.testing.assert_close(x_t, x / (sigma[:, None, None, None] ** 2 + 1).sqrt())
    torch.testing.assert_close(t, sigma_to_t(MODEL_SIGMAS, sigma))


def test_scalings_are_k_diffusions():
    sigma = torch.tensor([2.0])
    assert [c.item() for c in scalings(sigma, "epsilon")] == pytest.approx([1.0, -2.0, 1 / math.sqrt(5)])
    assert [c.item() for c in scalings(sigma, "v_prediction")] == pytest.approx(
        [1 / 5, -2 / math.sqrt(5), 1 / math.sqrt(5)])
    with pytest.raises(ValueError):
        scalings(sigma, "sample")


def text_mean_unet(calls):
    """A fake UNet whose output is the mean of its text conditioning, so cond and uncond are told apart."""
    def unet(x_t, t, text):
        calls.append(x_t.shape[0])
        return text.mean(dim=(1, 2))[:, None, None, None].expand_as(x_t)
    return unet


@pytest.mark.parametrize("uncond_tokens", [77, 154])
def test_cfg_is_uncond_plus_scale_times_the_difference(uncond_tokens):
    calls = []
    denoiser = Denoiser(text_mean_unet(calls), MODEL_SIGMAS, "epsilon")
    cond, uncond = torch.full((1, 77, 8), 2.0), torch.full((1, uncond_tokens, 8), 0.5)
    x, sigma = torch.ones(1, 4, 2, 2), torch.tensor([1.0])
    out = CFGDenoiser(denoiser, cond, uncond, scale=7.5)(x, sigma)
    d_cond, d_uncond = x - 2.0 * sigma, x - 0.5 * sigma  # eps model: D = x − σ·ε̂
    torch.testing.assert_close(out, d_uncond + 7.5 * (d_cond - d_uncond))
    assert calls == ([2] if uncond_tokens == 77 else [1, 1])  # one batched call when lengths agree


def test_cfg_scale_one_skips_the_uncond_pass():
    calls = []
    denoiser = Denoiser(text_mean_unet(calls), MODEL_SIGMAS, "epsilon")
    cond, uncond = torch.full((1, 77, 8), 2.0), torch.full((1, 77, 8), 0.5)
    x, sigma = torch.ones(1, 4, 2, 2), torch.tensor([1.0])
    torch.testing.assert_close(CFGDenoiser(denoiser, cond, uncond, scale=1.0)(x, sigma), x - 2.0 * sigma)
    assert calls == [1]  # the cond rows only: uncond + 1·(cond − uncond) is cond
