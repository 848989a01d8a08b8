"""The world generator: deterministic figures, tags that say what is drawn, Zipf-like tag counts, resumable sets."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from PIL import Image

from library.world.figures import (ACCESSORIES, NOVEL_ACCESSORY, WORLD_BACKGROUNDS, WORLD_HAIR, draw_figure,
                                   tags)
from library.world.make import main, write_world
from library.world.sampling import ZIPF_EXPONENT, figure_at, world_figure

FIGURES = [figure_at(3, i) for i in range(3000)]


def test_a_figure_depends_only_on_its_seed_and_index():
    assert figure_at(3, 17) == FIGURES[17]
    assert figure_at(4, 17) != FIGURES[17]
    assert draw_figure(figure_at(3, 17)).tobytes() == draw_figure(FIGURES[17]).tobytes()


def test_attributes_follow_the_zipf_law():
    counts = Counter(fig.hair for fig in FIGURES)
    weights = [1 / (k + 1) ** ZIPF_EXPONENT for k in range(len(WORLD_HAIR))]
    for name, weight in zip(WORLD_HAIR, weights):
        p = weight / sum(weights)
        expected, sigma = p * len(FIGURES), math.sqrt(len(FIGURES) * p * (1 - p))
        assert abs(counts[name] - expected) < 4 * sigma, (name, counts[name], expected)
    assert counts["black"] > 5 * counts["grey"]  # the first value is common, the last rare


def test_the_novel_accessory_is_never_in_the_world():
    worn = Counter(fig.accessory for fig in FIGURES)
    assert NOVEL_ACCESSORY not in worn and set(worn) == {None, *ACCESSORIES}
    assert 0.25 < 1 - worn[None] / len(FIGURES) < 0.35


@pytest.mark.parametrize("index", range(12))
def test_tags_say_what_is_drawn(index):
    fig = FIGURES[index]
    image = draw_figure(fig)
    caption = tags(fig)
    if fig.background != "gradient":
        assert image.getpixel((0, 0)) == WORLD_BACKGROUNDS[fig.background]
        assert f"{fig.background} background" in caption
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000)}
    assert WORLD_HAIR[fig.hair] in colours and f"{fig.hair} hair" in caption
    for name, colour in ACCESSORIES.items():
        assert (name in caption) == (fig.accessory == name)
        if fig.accessory == name:
            assert colour in colours


def test_every_accessory_draws_something_of_its_colour():
    base = world_figure(random.Random(0), (128, 128))
    from dataclasses import replace
    for name, colour in ACCESSORIES.items():
        drawn = draw_figure(replace(base, accessory=name))
        assert colour in {c for _, c in drawn.getcolors(maxcolors=100_000)}
        assert tags(replace(base, accessory=name)).count(name) == 1
    star = draw_figure(replace(base, accessory=NOVEL_ACCESSORY))
    assert star.tobytes() != draw_figure(base).tobytes() and NOVEL_ACCESSORY in tags(replace(base, accessory=NOVEL_ACCESSORY))


def test_a_larger_count_extends_a_set_and_keeps_what_is_there(tmp_path):
    out = tmp_path / "world"
    assert write_world(out, 5, seed=2) == 5
    first = {p.name: p.read_bytes() for p in out.glob("00000[0-4].*")}
    (out / "000004.txt").unlink()  # an interruption between an image and its caption
    assert write_world(out, 8, seed=2) == 4
    assert {p.name: p.read_bytes() for p in out.glob("00000[0-4].*")} == first
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.txt"))) == 8
    assert (out / "000006.txt").read_text() == ", ".join(tags(figure_at(2, 6)))
    assert Image.open(out / "000001.png").size == (128, 192)


def test_a_foreign_folder_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main([str(tmp_path), "--count", "2"]) == 1
    assert "is not empty and does not hold an earlier world data set" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
