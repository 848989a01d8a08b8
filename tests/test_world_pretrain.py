"""Pretraining the world base model: a few real steps of each stage, an exact resume, an exact latent rescale."""

from __future__ import annotations

import hashlib
import random

import pytest
import torch
from safetensors import safe_open

from library.errors import UserError
from library.models.sd_model import load_model
from library.tiny import build_random, build_tiny
from library.world.figures import draw_figure
from library.world.pretrain import CONFIG, LATENT_SCALE, PretrainPlan, main, pixels, pretrain, rescale_latents, training_caption
from library.world.sampling import figure_at

PLAN = PretrainPlan(vae_steps=4, vae_batch=4, images=6, unet_steps=4, unet_batch=3, warmup=1, save_every=2)


def contents(path) -> tuple[dict[str, str], dict[str, str]]:
    """Metadata and a digest of every tensor (safetensors writes its header keys in no fixed order)."""
    with safe_open(str(path), "pt") as f:
        digests = {k: hashlib.sha256(f.get_tensor(k).numpy().tobytes()).hexdigest() for k in f.keys()}
        return f.metadata(), digests


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    path = pretrain(root / "world.safetensors", PLAN, say=lambda _: None)
    return root, path


def test_the_model_loads_as_the_tiny_sd1_layout_in_fp16(pretrained):
    _, path = pretrained
    model = load_model(path)
    assert (model.config.name, model.family, model.prediction_type) == ("tiny-world-sd1", "sd1", "epsilon")
    assert {dtype for part in model.read_dtypes.values() for dtype in part.values()} == {torch.float16}
    fresh = build_random(CONFIG, seed=PLAN.seed)  # the weights moved away from their random start
    for part in ("unet", "vae", "text_encoder"):
        trained, start = getattr(model, part).state_dict(), getattr(fresh, part).state_dict()
        assert any(not torch.allclose(trained[k].float(), start[k].half().float()) for k in start), part
    assert "vae_steps" in model.metadata["ss_world_pretrain"]


def test_a_second_run_continues_from_the_saved_state_to_the_same_file(pretrained):
    root, path = pretrained
    work = root / "world.safetensors.work"
    assert (work / "denoiser-state.pt").is_file()  # saved at step 2 of 4
    first = contents(path)
    path.unlink()
    messages: list[str] = []
    pretrain(path, PLAN, say=messages.append)
    assert "resuming the UNet stage at step 2" in messages and not any(m.startswith("vae step") for m in messages)
    assert contents(path) == first


def test_other_settings_refuse_the_work_folder(pretrained):
    root, _ = pretrained
    with pytest.raises(UserError, match="other settings"):
        pretrain(root / "world.safetensors", PretrainPlan(**{**PLAN.__dict__, "unet_steps": 5}), say=lambda _: None)
    assert main([str(root / "world.safetensors"), "--unet-steps", "5"]) == 1


def test_the_latent_rescale_keeps_every_picture_and_gives_unit_variance():
    vae = build_tiny("sd1", seed=1).vae.eval()
    images = torch.stack([pixels(draw_figure(figure_at(0, i))) for i in range(0, 12, 3)])
    with torch.no_grad():
        before = vae.decode(vae.encode(images).latent_dist.mean).sample
        s = rescale_latents(vae, images)
        latents = vae.encode(images).latent_dist.mean
        after = vae.decode(latents).sample
    assert s != pytest.approx(1.0)
    assert (latents * LATENT_SCALE).std().item() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_training_captions_keep_the_subject_and_sometimes_drop_everything():
    caption = ["1girl", "solo", "long hair", "blue hair", "red eyes", "smile", "white shirt", "upper body"]
    rng = random.Random(0)
    seen = [training_caption(caption, rng, PLAN) for _ in range(400)]
    empty = sum(text == "" for text in seen)
    assert 20 < empty < 70  # caption dropout 0.1 (for CFG)
    kept = [text.split(", ") for text in seen if text]
    assert all(tags[0] == "1girl" and set(tags) <= set(caption) for tags in kept)
    assert len({tuple(tags) for tags in kept}) > 100  # thinned, not one fixed string
    assert any(tags[1:] != [t for t in caption if t in tags[1:]] for tags in kept)  # and shuffled
    assert 0.6 < sum(len(tags) - 1 for tags in kept) / (len(kept) * (len(caption) - 1)) < 0.8
