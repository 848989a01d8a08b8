"""k-diffusion's σ view of SD's noise schedule, pinned to the values A1111 1.10 uses (notes/a1111.md §3)."""

import pytest
import torch

from library.sampling.schedule import (alphas_cumprod, get_sigmas, karras_sigmas, sigma_to_t, sigmas_from_alphas,
                                       t_to_sigma)

SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


@pytest.fixture(scope="module")
def model_sigmas():
    return sigmas_from_alphas(alphas_cumprod(SD_SCHEDULER))


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=2e-6)


def test_the_sd_table_runs_from_sigma_min_to_sigma_max(model_sigmas):
    assert model_sigmas.shape == (1000,) and model_sigmas.dtype == torch.float32
    assert model_sigmas[0].item() == pytest.approx(0.0291675, abs=1e-7)
    assert model_sigmas[-1].item() == pytest.approx(14.614642, abs=1e-6)
    assert (model_sigmas.diff() > 0).all()


def test_sigma_is_the_noise_to_signal_ratio_of_x_t():
    alphas_bar = torch.tensor([0.5, 0.2])
    close(sigmas_from_alphas(alphas_bar), [1.0, 2.0])


def test_euler_a_uses_uniform_timesteps_and_ends_at_zero(model_sigmas):
    sigmas = get_sigmas(model_sigmas, 28)
    assert sigmas.shape == (29,)
    close(sigmas[:4], [14.614643, 11.743406, 9.543582, 7.839883])
    close(sigmas[-4:], [0.284258, 0.190723, 0.029168, 0.0])


def test_karras_schedule_of_20_steps(model_sigmas):
    sigmas = karras_sigmas(20, model_sigmas[0].item(), model_sigmas[-1].item())
    assert sigmas.shape == (21,)
    close(sigmas[:3], [14.614643, 11.725368, 9.340208])
    close(sigmas[-3:], [0.048482, 0.029168, 0.0])


def test_table_timesteps_map_to_their_own_sigmas_and_back(model_sigmas):
    t = torch.arange(1000).float()
    torch.testing.assert_close(t_to_sigma(model_sigmas, t), model_sigmas, rtol=1e-6, atol=0)
    torch.testing.assert_close(sigma_to_t(model_sigmas, model_sigmas), t, rtol=0, atol=1e-3)


def test_fractional_timesteps_round_trip(model_sigmas):
    t = torch.tensor([0.25, 10.5, 500.125, 998.75])
    torch.testing.assert_close(sigma_to_t(model_sigmas, t_to_sigma(model_sigmas, t)), t, rtol=0, atol=1e-3)


def test_sigma_between_two_entries_interpolates_in_log_sigma(model_sigmas):
    mid = (model_sigmas[10].log() * 0.75 + model_sigmas[11].log() * 0.25).exp()
    close(sigma_to_t(model_sigmas, mid), 10.25)


def test_sigmas_outside_the_table_clamp_to_the_ends(model_sigmas):
    close(sigma_to_t(model_sigmas, torch.tensor([0.001, 100.0])), [0.0, 999.0])


def test_sigma_to_t_matches_k_diffusions_formulation(model_sigmas):
    """k-diffusion finds the lower neighbour by a cumulative count; we use searchsorted. Same numbers."""
    log_sigmas = model_sigmas.log()
    sigma = torch.cat([get_sigmas(model_sigmas, 28)[:-1], torch.tensor([0.01, 20.0, 1.0])])
    log_sigma = sigma.log()
    low = (log_sigma - log_sigmas[:, None]).ge(0).cumsum(0).argmax(0).clamp(max=998)
    w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
    assert torch.equal(sigma_to_t(model_sigmas, sigma), (1 - w) * low + w * (low + 1))
