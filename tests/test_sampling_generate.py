"""generate(): A1111-style txt2img on the tiny models, reproducible per seed and safe to call mid-training."""

import io
from types import SimpleNamespace

import pytest
import torch

from library.models.hashes import model_hashes
from library.models.sd_model import load_model
from library.sampling.decode import decode_latents, to_pil
from library.sampling.generate import generate
from library.sampling.request import GenerationRequest
from library.tiny import build_tiny
from kdiffusion_reference import reference_euler_a


@pytest.fixture(scope="module")
def sd1(tiny_sd1):
    return load_model(tiny_sd1)


def small(**changes) -> GenerationRequest:
    settings = dict(prompt="a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=4, seed=1)
    return GenerationRequest(**{**settings, **changes})


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_same_seed_gives_the_same_image_and_another_seed_another(sd1):
    first, again, other = generate(sd1, [small(seed=7), small(seed=7), small(seed=8)])
    assert png_bytes(first.image) == png_bytes(again.image)
    assert png_bytes(first.image) != png_bytes(other.image)
    assert first.image.size == (64, 64) and first.image.mode == "RGB"


def test_a_batch_gives_the_images_of_one_at_a_time(sd1):
    """Same noise per image whatever the batch; only the UNet's float rounding differs with its batch size."""
    requests = [small(seed=3), small(seed=4, prompt="a dog")]
    batched = generate(sd1, requests, batch_size=2, output="latents")
    single = [generate(sd1, [r], output="latents")[0] for r in requests]
    for b, s in zip(batched, single):
        torch.testing.assert_close(b.latents, s.latents, rtol=0, atol=2e-3)
    assert not torch.allclose(batched[0].latents, batched[1].latents, atol=0.1)


def test_euler_a_equals_a_direct_k_diffusion_loop(sd1):
    request = small(seed=114514, cfg_scale=11, steps=5)
    with torch.no_grad():
        expected = reference_euler_a(sd1, request)
    (result,) = generate(sd1, [request], output="latents")
    torch.testing.assert_close(result.latents, expected, rtol=0, atol=1e-6)


def training_flags(model) -> dict[str, bool]:
    parts = model.modules().items()
    return {name: m.training for part, module in parts for name, m in module.named_modules(prefix=part)}


def test_sampling_mid_training_leaves_the_training_state_alone(sd1):
    sd1.unet.train()
    sd1.text_encoder.train()
    sd1.text_encoder.embeddings.eval()  # a part someone froze on purpose
    sd1.vae.eval()
    flags = training_flags(sd1)
    torch.manual_seed(1234)
    rng = torch.get_rng_state()
    generate(sd1, [small(), small(seed=None)])
    assert torch.equal(torch.get_rng_state(), rng)
    assert training_flags(sd1) == flags
    assert torch.is_grad_enabled()
    sd1.unet.eval()
    sd1.text_encoder.eval()


def test_a_random_seed_is_drawn_and_reported(sd1):
    a, b = generate(sd1, [small(seed=None), small(seed=-1)])
    assert 0 <= a.seed < 2 ** 32 and a.seed != b.seed
    assert f"Seed: {a.seed}," in a.infotext
    again = generate(sd1, [small(seed=a.seed)])[0]
    assert png_bytes(again.image) == png_bytes(a.image)


def test_mixed_requests_come_back_in_order_with_their_own_settings(sd1):
    long_negative = ", ".join(["lowres"] * 50)  # two chunks: the negative runs as its own UNet call
    requests = [small(width=64, height=96), small(negative_prompt=long_negative), small(clip_skip=2),
                small(width=64, height=96, sampler="euler", seed=2)]
    results = generate(sd1, requests, batch_size=4)
    assert [r.request for r in results] == requests
    assert [r.image.size for r in results] == [(64, 96), (64, 64), (64, 64), (64, 96)]
    assert "Clip skip: 2" in results[2].infotext and "Sampler: Euler," in results[3].infotext


def test_the_infotext_names_the_checkpoint(sd1, tiny_sd1):
    (result,) = generate(sd1, [small(cfg_scale=7)])
    assert result.infotext == (
        "a photo of a cat\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
        f"Model hash: {model_hashes(tiny_sd1).autov2}, Model: {tiny_sd1.stem}")


def test_latents_output_is_what_the_image_is_decoded_from(sd1):
    (latent,) = generate(sd1, [small()], output="latents")
    (image,) = generate(sd1, [small()])
    assert latent.image is None and latent.latents.shape == (4, 8, 8)
    with torch.no_grad():
        decoded = to_pil(decode_latents(sd1.vae, latent.latents[None]))[0]
    assert png_bytes(decoded) == png_bytes(image.image)


@pytest.mark.parametrize("variant", ["sd2", "sd2-v"])
def test_sd2_and_v_prediction_models_generate(variant):
    model = build_tiny(variant, seed=5)
    (result,) = generate(model, [small(clip_skip=2)])
    assert result.image.size == (64, 64)
    assert "Model hash" not in result.infotext  # built in memory: no file to hash


def test_autocast_precision_runs(sd1):
    (plain,) = generate(sd1, [small()], output="latents")
    (mixed,) = generate(sd1, [small()], output="latents", dtype=torch.bfloat16)
    assert torch.isfinite(mixed.latents).all()
    assert (mixed.latents - plain.latents).abs().mean() < 0.1 * plain.latents.abs().mean()


def test_progress_bar_counts_model_steps(sd1, capsys):
    generate(sd1, [small(steps=3), small(steps=3, width=96)], progress=True)
    assert "6/6" in capsys.readouterr().err


class HalfVAE(torch.nn.Module):
    """A VAE stand-in that overflows (NaN) whenever it runs in fp16, like the SD VAE on some latents."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1, dtype=torch.float16))
        self.config = SimpleNamespace(scaling_factor=0.5)

    def decode(self, z):
        out = z.repeat(1, 1, 8, 8)[:, :3] * self.weight
        return SimpleNamespace(sample=out * float("nan") if self.weight.dtype == torch.float16 else out)


def test_a_nan_fp16_decode_is_redone_in_fp32_and_the_vae_stays_fp16():
    vae = HalfVAE()
    pixels = decode_latents(vae, torch.full((2, 4, 1, 1), 0.25))
    assert torch.isfinite(pixels).all() and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, torch.full((2, 3, 8, 8), 0.5))
    assert vae.weight.dtype == torch.float16


def test_invalid_output_kind_is_refused(sd1):
    with pytest.raises(ValueError):
        generate(sd1, [small()], output="png")


def test_prompt_emphasis_reaches_the_model(sd1):
    """A1111 syntax is parsed, not fed to CLIP as brackets: weight 1 changes nothing, other weights do."""
    plain, same, stronger = generate(sd1, [small(prompt="a photo of a cat"), small(prompt="a photo of a (cat:1.0)"),
                                           small(prompt="a photo of a (cat:1.5)")], output="latents")
    assert torch.equal(plain.latents, same.latents)
    assert not torch.equal(plain.latents, stronger.latents)


def assert_same_images(batched, singles):
    """Latents of batched runs against the same requests run one at a time.

    Not bit-exact: at another batch size the UNet's convolutions and matmuls sum in another order (oneDNN, cuDNN
    and cuBLAS choose kernels by shape), and four guided steps of a random tiny UNet amplify those last-bit
    differences to about 1e-4 of the latents' scale (measured on CPU: at most 6e-3 on latents up to 52). The
    tolerance, 1e-3 of the scale, still tells images apart: another seed's image differs by about the scale itself.
    """
    scale = max(s.abs().max().item() for s in singles)
    for b, s in zip(batched, singles, strict=True):
        torch.testing.assert_close(b, s, rtol=0, atol=1e-3 * scale)
    assert (singles[0] - singles[1]).abs().max() > 0.1 * scale


def recording_sample(gen, sizes, fail_above=None):
    """`_sample` that records each job's image count and runs out of GPU memory for jobs above `fail_above`."""
    real = gen._sample

    def sample(model, job, *args):
        sizes.append(len(job.indices))
        if fail_above is not None and len(job.indices) > fail_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(model, job, *args)
    return sample


def test_a_memory_limited_batch_gives_the_images_of_one_at_a_time(sd1, monkeypatch):
    """Three images where free memory allows two per UNet pass run as 2 + 1, each image with its own noise."""
    from library.sampling import generate as gen

    requests = [small(seed=s) for s in (3, 4, 5)]
    singles = [generate(sd1, [r], output="latents")[0].latents for r in requests]
    sizes = []
    monkeypatch.setattr(gen, "_memory_cap", lambda device, width, height, dtype: 2)
    monkeypatch.setattr(gen, "_sample", recording_sample(gen, sizes))
    batched = generate(sd1, requests, output="latents", batch_size=3)
    assert sizes == [2, 1]
    assert_same_images([b.latents for b in batched], singles)


def test_a_batch_that_runs_out_of_gpu_memory_is_halved(sd1, monkeypatch):
    """Memory-aware batching: an out-of-memory pass is retried as two halves; every image keeps its own noise."""
    from library.sampling import generate as gen

    requests = [small(seed=s) for s in (1, 2, 3, 4)]
    singles = [generate(sd1, [r], output="latents")[0].latents for r in requests]
    sizes = []
    monkeypatch.setattr(gen, "_sample", recording_sample(gen, sizes, fail_above=2))
    batched = generate(sd1, requests, output="latents", batch_size=4)
    assert sizes == [4, 2, 2]
    assert_same_images([b.latents for b in batched], singles)


def test_the_gpu_batch_cap_follows_free_memory_and_image_area():
    from library.sampling.generate import images_that_fit

    gib = 2**30
    assert images_that_fit(20 * gib, 512, 512, 2) == 42
    assert images_that_fit(20 * gib, 1024, 1024, 2) == 10  # four times the area, a quarter of the images
    assert images_that_fit(20 * gib, 512, 512, 4) == 21  # fp32 needs twice the memory
    assert images_that_fit(0, 512, 512, 2) == 1  # never below one: the halving fallback is the safety net
