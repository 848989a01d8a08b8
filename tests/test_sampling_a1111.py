"""A1111 parity beyond Euler a: DPM++ 2M (Karras), DDIM, ENSD and per-image seeds against loops written out here."""

import pytest
import torch

from library.sampling.denoiser import EpsPredictor
from library.sampling.generate import generate
from library.sampling.request import GenerationRequest
from library.sampling.schedule import alphas_cumprod, ddim_timesteps
from library.tiny import build_tiny
from kdiffusion_reference import euler_ancestral, uniform_sigmas


@pytest.fixture(scope="module")
def sd1():
    return build_tiny("sd1", 0)


def small(**changes) -> GenerationRequest:
    settings = dict(prompt="a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=4, seed=114514,
                    cfg_scale=11)
    return GenerationRequest(**{**settings, **changes})


def encode_both(model, request):
    tok, te = model.tokenizer, model.text_encoder

    def encode(text):
        return te(torch.tensor([tok(text, padding="max_length").input_ids])).last_hidden_state

    return encode(request.prompt), encode(request.negative_prompt)


def reference_denoiser(model, request):
    """k-diffusion's CompVisDenoiser with CFG on the denoised outputs, written out; returns (D, model σ table)."""
    cond, uncond = encode_both(model, request)
    alphas_bar = alphas_cumprod(model.config.scheduler)
    model_sigmas = ((1 - alphas_bar) / alphas_bar) ** 0.5
    log_sigmas = model_sigmas.log()

    def denoise(x, sigma):
        s = sigma.reshape(1)
        low = (s.log() - log_sigmas[:, None]).ge(0).cumsum(0).argmax(0).clamp(max=998)
        w = ((log_sigmas[low] - s.log()) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
        timestep = (1 - w) * low + w * (low + 1)
        x_in = torch.cat([x, x]) * (1 / (sigma ** 2 + 1) ** 0.5)
        eps = model.unet(x_in, torch.cat([timestep, timestep]), encoder_hidden_states=torch.cat([cond, uncond])).sample
        d_cond, d_uncond = (torch.cat([x, x]) + eps * -sigma).chunk(2)
        return d_uncond + (d_cond - d_uncond) * request.cfg_scale

    return denoise, model_sigmas


def initial_noise(request, generator):
    return torch.randn([1, 4, request.height // 8, request.width // 8], generator=generator)


def reference_dpmpp_2m_karras(model, request):
    """k-diffusion `sample_dpmpp_2m` on `get_sigmas_karras(n, σ_min, σ_max, ρ=7)`, as A1111 1.10's "DPM++ 2M"."""
    denoise, model_sigmas = reference_denoiser(model, request)
    ramp = torch.linspace(0, 1, request.steps)
    lo, hi = model_sigmas[0].item() ** (1 / 7), model_sigmas[-1].item() ** (1 / 7)
    sigmas = torch.cat([(hi + ramp * (lo - hi)) ** 7, torch.zeros(1)])
    x = initial_noise(request, torch.Generator().manual_seed(request.seed)) * sigmas[0]
    old_denoised = None
    for i in range(request.steps):
        denoised = denoise(x, sigmas[i])
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised
        else:
            r = (t - -sigmas[i - 1].log()) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x[0]


def reference_ddim(model, request):
    """A1111's `sd_samplers_timesteps_impl.ddim` with η = 0: ε-space CFG, integer timesteps, x_t from pure noise."""
    cond, uncond = encode_both(model, request)
    alphas_bar = alphas_cumprod(model.config.scheduler)
    timesteps = [min(t + 1, 999) for t in range(0, 1000, 1000 // request.steps)]
    x = initial_noise(request, torch.Generator().manual_seed(request.seed))
    for index in range(len(timesteps) - 1, 0, -1):
        t = torch.tensor([float(timesteps[index])] * 2)
        out = model.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([cond, uncond])).sample
        e_cond, e_uncond = out.chunk(2)
        e_t = e_uncond + (e_cond - e_uncond) * request.cfg_scale
        a_t, a_prev = alphas_bar[timesteps[index]], alphas_bar[timesteps[index - 1]]
        pred_x0 = (x - (1 - a_t).sqrt() * e_t) / a_t.sqrt()
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * e_t
    return x[0]


def reference_euler_a_ensd(model, request, seed):
    """Euler a with A1111's ENSD: initial noise from `seed`, ancestral noise from a generator seeded seed + ENSD."""
    denoise, model_sigmas = reference_denoiser(model, request)
    sigmas = uniform_sigmas(model_sigmas.log(), request.steps)
    x = initial_noise(request, torch.Generator().manual_seed(seed)) * sigmas[0]
    return euler_ancestral(denoise, sigmas, x, torch.Generator().manual_seed(seed + request.ensd))[0]


def test_dpmpp_2m_karras_equals_a_direct_k_diffusion_loop(sd1):
    request = small(sampler="DPM++ 2M", steps=5)
    with torch.no_grad():
        expected = reference_dpmpp_2m_karras(sd1, request)
    (result,) = generate(sd1, [request], output="latents")
    torch.testing.assert_close(result.latents, expected, rtol=0, atol=1e-6)
    assert "Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 11," in result.infotext


def test_ddim_equals_a1111s_timestep_loop(sd1):
    request = small(sampler="ddim", steps=4)
    with torch.no_grad():
        expected = reference_ddim(sd1, request)
    (result,) = generate(sd1, [request], output="latents")
    torch.testing.assert_close(result.latents, expected, rtol=0, atol=1e-6)
    assert "Sampler: DDIM, CFG scale: 11," in result.infotext


def test_euler_a_with_ensd_equals_a_direct_loop_and_ensd_changes_the_image(sd1):
    request = small(ensd=31337, steps=5)
    with torch.no_grad():
        expected = reference_euler_a_ensd(sd1, request, request.seed)
    (result,) = generate(sd1, [request], output="latents")
    torch.testing.assert_close(result.latents, expected, rtol=0, atol=1e-6)
    (plain,) = generate(sd1, [small(steps=5)], output="latents")
    assert not torch.allclose(plain.latents, result.latents, atol=1e-3)
    assert result.infotext.endswith("Size: 64x64, ENSD: 31337")


def test_image_i_of_a_request_has_seed_plus_i_and_its_own_ensd_generator(sd1):
    request = small(n_images=2, ensd=31337, steps=3)
    results = generate(sd1, [request, small(seed=1, steps=3)], output="latents")
    assert [r.seed for r in results] == [114514, 114515, 1]
    assert [r.request for r in results] == [request, request, small(seed=1, steps=3)]
    assert "Seed: 114515," in results[1].infotext
    with torch.no_grad():
        expected = reference_euler_a_ensd(sd1, request, 114515)
    torch.testing.assert_close(results[1].latents, expected, rtol=0, atol=1e-6)


def test_a_random_seed_is_drawn_once_per_request():
    from library.sampling.generate import _per_image
    requests, seeds = _per_image([GenerationRequest("a", seed=None, n_images=3)])
    assert len(requests) == 3 and seeds[1] == seeds[0] + 1 and seeds[2] == seeds[0] + 2


def test_n_images_must_be_positive():
    from library.errors import UserError
    with pytest.raises(UserError):
        GenerationRequest("a", n_images=0)


def test_ddim_timesteps_are_a1111s():
    assert ddim_timesteps(4).tolist() == [1, 251, 501, 751]
    assert len(ddim_timesteps(20)) == 20 and ddim_timesteps(20)[-1] == 951
    assert len(ddim_timesteps(28)) == 29 and ddim_timesteps(28)[-1] == 981  # 1000 // 28 = 35: 29 timesteps


def test_a_perfect_v_model_gives_the_true_noise_to_ddim():
    alphas_bar = alphas_cumprod({})
    x0, eps, t = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), torch.tensor([981.0, 1.0])
    a = alphas_bar[t.long()][:, None, None, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    seen = []
    predictor = EpsPredictor(lambda x, timestep, text: seen.append(timestep) or v, alphas_bar, "v_prediction")
    torch.testing.assert_close(predictor(x_t, alphas_bar[t.long()], None), eps)
    assert torch.equal(seen[0], t)  # called with ᾱ_t, the UNet still gets the integer timestep
