"""Pretraining the world base model: a few real steps of each stage, an exact resume, an exact latent rescale."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from library.data.pixels import to_batch
from library.errors import UserError
from library.models.sd_model import load_model
from library.tiny import build_random, build_tiny
from library.text.conditioning import encode_prompts
from library.world.figures import STAR, TAG_GROUPS, draw_figure
from library.world.pretrain import (CONFIG, LATENT_SCALE, PretrainPlan, _random_crop, _rescale_probe, _vae_picture,
                                    caption_targets, colour_map, colour_map_loss, denoiser_loss, encode_world, main, pretrain, prompt_gap, rescale_latents,
                                    train_text_encoder, train_vae, training_caption)
from library.world.sampling import figure_at

PLAN = PretrainPlan(vae_steps=4, vae_batch=4, images=6, text_steps=3, text_batch=4, unet_steps=4, unet_batch=3, warmup=1,
                    save_every=2)


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
    assert (model.config.name, model.family, model.prediction_type) == ("tiny-world-sd1", "sd1", "v_prediction")
    assert model.metadata["modelspec.prediction_type"] == "v"  # how every script knows it without an option
    assert {dtype for part in model.read_dtypes.values() for dtype in part.values()} == {torch.float16}
    fresh = build_random(CONFIG, seed=PLAN.seed)  # the weights moved away from their random start
    for part in ("unet", "vae", "text_encoder"):
        trained, start = getattr(model, part).state_dict(), getattr(fresh, part).state_dict()
        assert any(not torch.allclose(trained[k].float(), start[k].half().float()) for k in start), part
    assert "vae_steps" in model.metadata["ss_world_pretrain"]


def test_a_world_file_without_metadata_still_loads_as_v(pretrained, tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = pretrained
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(path)), str(bare))  # no metadata: the shipped config decides
    assert load_model(bare).prediction_type == "v_prediction"


def test_a_second_run_continues_from_the_saved_state_to_the_same_file(pretrained):
    root, path = pretrained
    work = root / "world.safetensors.work"
    assert (work / "denoiser-state.pt").is_file()  # saved at step 2 of 4
    first = contents(path)
    path.unlink()
    messages: list[str] = []
    pretrain(path, PLAN, say=messages.append)
    assert "resuming the UNet stage at step 2" in messages
    assert not any(m.startswith(("vae step", "text step")) for m in messages)
    assert contents(path) == first


def test_other_settings_refuse_the_stage_they_change_and_name_its_files(pretrained):
    root, _ = pretrained
    work = root / "world.safetensors.work"
    with pytest.raises(UserError, match=r"denoiser \(unet_steps 4 there, 5 now\).*delete denoiser-state.pt, "
                                        r"denoiser.plan.json there") as caught:
        pretrain(root / "world.safetensors", replace(PLAN, unet_steps=5), say=lambda _: None)
    assert re.search(r"settings: denoiser \(unet_steps 4 there, 5 now\)\. Use", str(caught.value))  # that stage only
    with pytest.raises(UserError, match=r"text \(tag_keep 0.7 there, 0.9 now\); denoiser"):
        pretrain(root / "world.safetensors", replace(PLAN, tag_keep=0.9), say=lambda _: None)
    assert main([str(root / "world.safetensors"), "--work", str(work), "--unet-steps", "5"]) == 1


def test_stage_files_without_recorded_settings_are_refused_and_a_stage_without_files_takes_new_ones(pretrained,
                                                                                                  tmp_path):
    root, _ = pretrained
    work = tmp_path / "work"
    shutil.copytree(root / "world.safetensors.work", work)
    (work / "vae.plan.json").unlink()  # as a folder of an older version, which recorded no settings, holds
    with pytest.raises(UserError, match=r"vae \(settings not recorded\).*delete vae-state.pt, vae.pt there"):
        pretrain(tmp_path / "w.safetensors", PLAN, work, say=lambda _: None)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "denoiser.plan.json").write_text('{"unet_steps": 99}')  # a stage stopped before it saved anything
    pretrain(tmp_path / "f.safetensors", PLAN, fresh, say=lambda _: None)
    assert '"unet_steps": 4' in (fresh / "denoiser.plan.json").read_text()


def test_a_record_made_before_a_setting_existed_matches_its_old_value_only(pretrained, tmp_path):
    """A UNet stage recorded before `prediction` existed was made with epsilon: it continues for epsilon and is
    refused for v."""
    root, _ = pretrained
    work = tmp_path / "work"
    shutil.copytree(root / "world.safetensors.work", work)
    record = work / "denoiser.plan.json"
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "prediction"}))
    with pytest.raises(UserError, match=r"denoiser \(prediction 'epsilon' there, 'v_prediction' now\)"):
        pretrain(tmp_path / "w.safetensors", PLAN, work, say=lambda _: None)
    messages: list[str] = []
    pretrain(tmp_path / "w.safetensors", replace(PLAN, prediction="epsilon"), work, say=messages.append)
    assert "resuming the UNet stage at step 2" in messages


def test_a_record_with_a_setting_this_version_lacks_is_refused_naming_it(pretrained, tmp_path):
    root, _ = pretrained
    work = tmp_path / "work"
    shutil.copytree(root / "world.safetensors.work", work)
    record = work / "text.plan.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "text_width": 96}))
    with pytest.raises(UserError, match=r"settings: text \(text_width 96 there, None now\)\. Use"):
        pretrain(tmp_path / "w.safetensors", PLAN, work, say=lambda _: None)


def test_without_the_star_the_vae_pictures_are_drawn_as_before_it():
    """vae_star 0 draws the VAE's pictures as the code before the star did, so earlier models' VAE stages can be
    made again."""
    for whole in (True, False):
        rng, before = random.Random(7), random.Random(7)
        picture = _vae_picture(0, rng, 64, whole, 0.0)
        if whole:
            before.random()
        else:
            fig = figure_at(1, before.randrange(10**9))
            before.randrange(fig.height - 64 + 1), before.randrange(fig.width - 64 + 1)
        assert rng.getstate() == before.getstate() and picture.shape == (3, 64, 64)


def test_a_new_unet_stage_reuses_the_earlier_stages(pretrained, tmp_path):
    root, _ = pretrained
    work = tmp_path / "work"
    shutil.copytree(root / "world.safetensors.work", work)
    for name in ("denoiser-state.pt", "denoiser.plan.json"):
        (work / name).unlink(missing_ok=True)
    messages: list[str] = []
    pretrain(tmp_path / "more.safetensors", replace(PLAN, unet_steps=5), work, say=messages.append)
    assert {"VAE stage done earlier", "text stage done earlier"} <= {m.split(":")[0] for m in messages}
    assert sum(m.startswith("unet step 5/5") for m in messages) == 1


def test_the_text_stage_teaches_the_text_encoder_to_tell_the_colour_words_apart():
    model = build_random(CONFIG, seed=0)
    prompts = ["1girl, blue hair", "1girl, blue eyes"]

    def distance() -> float:
        with torch.no_grad():
            a, b = encode_prompts(model, prompts, max_chunks=1)[:, 10:]  # end positions: the caption's summary
        return ((a - b).norm() / a.norm()).item()

    before = distance()
    train_text_encoder(model, replace(PLAN, text_steps=120, text_batch=32), say=lambda _: None)
    assert distance() > 3 * before


def test_caption_targets_name_the_said_tag_of_each_group_or_none():
    targets = dict(zip(TAG_GROUPS, caption_targets("1girl, smile, blue eyes, hat")))
    assert targets["eyes"] == TAG_GROUPS["eyes"].index("blue eyes")
    assert targets["mouth"] == TAG_GROUPS["mouth"].index("smile")
    assert targets["accessory"] == TAG_GROUPS["accessory"].index("hat")
    assert targets["hair"] == len(TAG_GROUPS["hair"]) and targets["background"] == len(TAG_GROUPS["background"])


def test_the_unet_stage_learns_v_by_default_and_epsilon_when_asked():
    from library.models.model_config import shipped_config
    from library.sampling.schedule import alphas_cumprod
    from library.training.losses import min_snr_weight

    ac = alphas_cumprod(shipped_config(CONFIG).scheduler)
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    timesteps = torch.tensor([10, 500, 990])
    a = ac[timesteps].view(-1, 1, 1, 1)
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    plain_v = PretrainPlan()
    assert (plain_v.prediction, plain_v.min_snr_gamma) == ("v_prediction", 0.0)
    assert denoiser_loss(v, x0, noise, timesteps, ac, plain_v) < 1e-10
    assert denoiser_loss(noise, x0, noise, timesteps, ac, plain_v) == pytest.approx((noise - v).pow(2).mean().item())
    epsilon = replace(plain_v, prediction="epsilon", min_snr_gamma=5.0)
    weighted = ((v - noise).pow(2).mean(dim=(1, 2, 3)) * min_snr_weight(timesteps, 5.0, ac, "epsilon")).mean()
    assert denoiser_loss(noise, x0, noise, timesteps, ac, epsilon) < 1e-10
    assert denoiser_loss(v, x0, noise, timesteps, ac, epsilon) == pytest.approx(weighted.item())


def test_the_latent_rescale_keeps_every_picture_and_gives_unit_variance():
    vae = build_tiny("sd1", seed=1).vae.eval()
    images = to_batch([draw_figure(figure_at(0, i)) for i in range(0, 12, 3)])
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


def test_the_prompt_gap_is_zero_for_a_unet_that_cannot_read_the_prompt():
    from library.sampling.schedule import alphas_cumprod

    model = build_random(CONFIG, seed=0)
    world = encode_world(model.vae, PLAN, say=lambda _: None)
    ac = alphas_cumprod(model.config.scheduler)
    assert abs(prompt_gap(model, world, ac, count=2)) > 1e-4
    with torch.no_grad():  # cross-attention outputs cut: the prompt no longer reaches the UNet
        for name, p in model.unet.named_parameters():
            if ".attn2.to_out." in name:
                p.zero_()
    assert prompt_gap(model, world, ac, count=2) == 0.0


def test_a_crop_around_a_box_holds_all_of_it():
    image = torch.zeros(1, 128, 192)
    image[0, 90:120, 150:180] = 1.0  # the box (150, 90, 180, 120) as (left, top, right, bottom)
    rng = random.Random(0)
    crops = [_random_crop(image, 64, rng, (150, 90, 180, 120)) for _ in range(50)]
    assert all(crop.sum() == 30 * 30 for crop in crops)
    assert len({tuple(crop.nonzero()[0].tolist()) for crop in crops}) > 5  # still random where it can be


def test_some_vae_pictures_wear_the_star_the_unet_never_sees_and_the_crops_of_those_hold_it():
    def stars(share: float, whole: bool) -> int:
        rng = random.Random(0)
        pictures = [_vae_picture(0, rng, 64, whole, share) for _ in range(12)]
        star = torch.tensor(STAR, dtype=torch.float32) / 127.5 - 1
        return sum(bool(((p - star[:, None, None]).abs().amax(dim=0) < 1e-3).any()) for p in pictures)

    assert stars(0.0, True) == stars(0.0, False) == 0
    assert stars(1.0, True) == stars(1.0, False) == 12  # a crop anywhere would miss the star about half the time


def test_the_colour_map_loss_is_zero_for_a_latent_that_is_the_colour_map_and_not_for_another():
    pixels = _rescale_probe(0)
    target = colour_map(pixels)
    scale = 1 / target.std(dim=(0, 2, 3))[None, :, None, None]
    unit = scale * (target - target.mean(dim=(0, 2, 3), keepdim=True))
    latent = 3.0 * torch.cat([unit, unit[:, :1]], dim=1)  # any spread: the loss reads the latent at unit spread
    assert colour_map_loss(latent, pixels, scale) < 0.01
    assert colour_map_loss(latent[:, [1, 2, 0, 3]], pixels, scale) > 0.5  # the same numbers, axes swapped


def test_the_colour_map_weight_enters_the_vae_stage_and_zero_leaves_it_a_plain_autoencoder(tmp_path):
    def weights(colour_map_weight: float) -> torch.Tensor:
        vae = build_random(CONFIG, seed=0).vae
        plan = replace(PLAN, vae_steps=2, vae_colour_map=colour_map_weight, save_every=100)
        train_vae(vae, plan, tmp_path / str(colour_map_weight), say=lambda _: None)
        return vae.encoder.conv_in.weight.detach().clone()

    for name in ("0.0", "0.5"):
        (tmp_path / name).mkdir()
    plain = weights(0.0)
    assert not torch.equal(plain, weights(0.5))
    assert torch.equal(plain, weights(0.0))
