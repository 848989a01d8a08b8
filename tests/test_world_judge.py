"""The judge: its classifier reads true world pictures right, its scores are the right shares beside the right
chance, and it tells the shipped base model (which has learned the world) from a random tiny model."""

from __future__ import annotations

import json
from dataclasses import replace


import pytest
import torch
from PIL import Image

from library.errors import UserError
from library.world.figures import draw_figure
from library.world.judge import (DEFAULT_JUDGE, JudgePrompt, JudgeSettings, judge_model, main, palette_share,
                                 prompt_set, score, vae_ceiling, world_frequencies)
from library.world.judge_net import (ATTRIBUTES, JudgeNet, judge_figure, load_judge, read_attributes, save_judge, truth,
                                     with_tag)
from library.world.sampling import HELD_OUT_PAIRS

BASE = DEFAULT_JUDGE.with_name("tiny-world-sd1.safetensors")


@pytest.fixture(scope="module")
def judge():
    return load_judge(DEFAULT_JUDGE)


def test_the_judge_reads_unseen_world_pictures(judge):
    figs = [judge_figure(7, i) for i in range(300)]  # seed 7: pictures the judge never trained on
    seen = read_attributes(judge, [draw_figure(fig) for fig in figs])
    for name in ATTRIBUTES:
        right = sum(s[name] == truth(f)[name] for s, f in zip(seen, figs)) / len(figs)
        assert right >= 0.95, (name, right)


def test_scores_are_shares_of_pictures_beside_the_world_frequency():
    prompts = [JudgePrompt("1girl, solo, red hair", (("hair", "red hair"),), "attributes"),
               JudgePrompt("1girl, solo, blonde hair, blue background",
                           (("hair", "blonde hair"), ("background", "blue background")), "held-out pairs")]
    settings = JudgeSettings(seeds=2)
    frequencies = {"hair": {"red hair": 0.1, "blonde hair": 0.2}, "background": {"blue background": 0.25}}
    seen = [{"hair": "red hair"}, {"hair": "pink hair"},
            {"hair": "blonde hair", "background": "blue background"}, {"hair": "blonde hair", "background": "white background"}]
    report = score(prompts, seen, settings, frequencies)
    assert report["attributes"]["hair"] == {"pictures": 2, "shown": 0.5, "chance": 0.1}
    assert report["held-out pairs"]["hair + background"] == {"pictures": 2, "shown": 0.5, "chance": 0.05}


def test_the_prompt_set_asks_every_value_and_the_held_out_pairs():
    prompts = prompt_set("sks girl")
    asked = {tag for p in prompts if p.group == "attributes" for _, tag in p.asked}
    assert asked == {tag for values in ATTRIBUTES.values() for tag in values} - {"no accessory", "star hair ornament"}
    pairs = [p.asked for p in prompts if p.group == "held-out pairs"]
    assert pairs == [(("hair", f"{h} hair"), ("background", f"{b} background")) for h, b in HELD_OUT_PAIRS]
    assert all(p.prompt.startswith("sks girl") for p in prompts if p.group == "concept")


def test_world_frequencies_follow_the_world():
    freq = world_frequencies(count=3000)
    assert freq["hair"]["black hair"] > 5 * freq["hair"]["grey hair"]
    assert sum(freq["background"].values()) == pytest.approx(1.0)
    assert freq["accessory"]["star hair ornament"] == 0.0


def test_world_pictures_are_world_coloured_and_noise_is_not():
    world = [draw_figure(judge_figure(3, i)) for i in range(8)]
    noise = [Image.fromarray(torch.randint(0, 256, (128, 128, 3), dtype=torch.uint8).numpy()) for _ in range(8)]
    assert palette_share(world) > 0.9
    assert palette_share(noise) < 0.3


def test_weights_for_another_attribute_table_are_refused(tmp_path, monkeypatch):
    path = save_judge(JudgeNet(), tmp_path / "judge.safetensors", {})
    import library.world.judge_net as judge_net

    monkeypatch.setitem(judge_net.ATTRIBUTES, "hat colour", ["red hat"])
    with pytest.raises(UserError, match="other attributes"):
        load_judge(path)
    with pytest.raises(UserError, match="not found"):
        load_judge(tmp_path / "missing.safetensors")


def test_the_base_model_draws_the_world_as_asked_and_a_random_model_draws_noise(tmp_path):
    from library.models.sd_model import save_model
    from library.tiny import build_random

    settings = JudgeSettings(replace(JudgeSettings().picture, steps=12), seeds=2)
    report, _, _ = judge_model(BASE, settings=settings, progress=False, attributes=["background", "hair"])
    random_model = save_model(build_random("tiny-world-sd1", seed=5), tmp_path / "random.safetensors")
    noise, _, _ = judge_model(random_model, settings=settings, progress=False, attributes=["mouth"])
    assert report["looks like the world"]["palette share"] > 0.4
    assert noise["looks like the world"]["palette share"] < 0.3
    # The targets (background ≥ 90%, hair ≥ 70%; measured here 94% and 95%). The v base before this one,
    # on a plain VAE, drew hair 50%; the ε one before it drew the background the seed chose (42%).
    assert report["attributes"]["background"]["shown"] >= 0.9
    assert report["attributes"]["hair"]["shown"] >= 0.7


def test_the_vae_ceiling_reads_pictures_after_the_models_own_vae(judge):
    from library.models.sd_model import load_model
    from library.tiny import build_random

    shipped = vae_ceiling(load_model(BASE), judge, per_value=1)
    untrained = vae_ceiling(build_random("tiny-world-sd1", seed=5), judge, per_value=1)
    assert shipped["background"] >= 0.9 and shipped["hair length"] >= 0.8 and shipped["hair"] >= 0.8  # 91% measured
    assert untrained["background"] < 0.3 and shipped["background"] - untrained["background"] > 0.6


def test_with_tag_gives_each_attribute_each_value_and_the_judges_file_keeps_its_accuracy(tmp_path):
    fig = judge_figure(7, 0)
    for name, values in ATTRIBUTES.items():
        for tag in values:
            changed = with_tag(fig, name, tag)
            assert truth(changed)[name] == tag
            assert {k: v for k, v in truth(changed).items() if k != name} == \
                {k: v for k, v in truth(fig).items() if k != name}
    saved = save_judge(JudgeNet(), tmp_path / "judge.safetensors", {"hair": 0.5})
    assert load_judge(saved).accuracy_on_world == {"hair": 0.5}


def test_the_command_writes_a_report_and_a_grid(tmp_path, capsys):
    out, grid = tmp_path / "judge.json", tmp_path / "grid.png"
    assert main([str(BASE), "--json", str(out), "--grid", str(grid), "--seeds", "1", "--steps", "2",
                 "--cfg-scale", "4.5", "--concept", "sks girl"]) == 0
    report = json.loads(out.read_text())
    assert set(report["attributes"]) == set(ATTRIBUTES)
    assert report["concept"]["accessory"]["chance"] == 0.0  # the base model never saw the star
    assert min(report["judge_accuracy_on_world"].values()) >= 0.95  # as measured when the judge was made
    assert set(report["vae ceiling"]) == set(ATTRIBUTES)
    assert report["model_sha256"] and (report["settings"]["steps"], report["settings"]["cfg_scale"]) == (2, 4.5)
    assert Image.open(grid).size[0] >= 128
    assert "held-out pairs" in capsys.readouterr().out
