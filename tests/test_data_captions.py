"""Captions: reading caption files, and kohya's per-sample caption rules, one rule per test."""

import pytest

from library.config import SubsetSpec
from library.data.captions import count_tags, read_caption_file, render_caption, warmup_count
from library.data.problems import Unusable

TAGS = "sks girl, 1girl, solo, long hair, smile, red shirt, upper body"


def render(text=TAGS, seed=0, epoch=0, step=0, max_steps=100, **settings):
    return render_caption(text, SubsetSpec(**settings), seed, epoch=epoch, step=step, max_steps=max_steps)


def tags_of(caption):
    return caption.split(", ")


# Reading caption files


def test_a_missing_caption_file_reads_as_none_and_an_empty_one_as_empty(tmp_path):
    assert read_caption_file(tmp_path / "none.txt", False) is None
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert read_caption_file(tmp_path / "empty.txt", False) == ""


def test_only_the_first_line_counts_unless_wildcards_are_on(tmp_path):
    (tmp_path / "a.txt").write_text("\ufefffirst line  \r\nsecond line\n\nthird\n", encoding="utf-8")
    assert read_caption_file(tmp_path / "a.txt", False) == "first line"
    assert read_caption_file(tmp_path / "a.txt", True) == "first line\nsecond line\nthird"


def test_a_caption_that_is_not_utf8_is_unusable(tmp_path):
    (tmp_path / "a.txt").write_bytes("mädchen".encode("latin-1"))
    with pytest.raises(Unusable, match="not UTF-8"):
        read_caption_file(tmp_path / "a.txt", False)


# Rendering, in kohya's order


def test_without_options_the_caption_is_used_as_written():
    assert render("a, b,c") == "a, b,c"


def test_prefix_and_suffix_are_joined_with_a_space():
    assert render("sks girl", caption_prefix="masterpiece,", caption_suffix=", best quality") == \
        "masterpiece, sks girl , best quality"  # kohya joins with a space, so write the commas yourself


def test_caption_dropout_empties_the_whole_caption():
    assert render(caption_dropout_rate=1.0, caption_prefix="x") == ""
    dropped = [render(seed=s, caption_dropout_rate=0.5) == "" for s in range(200)]
    assert 60 < sum(dropped) < 140


def test_caption_dropout_every_n_epochs_counts_epochs_from_one_like_kohya():
    # epoch index 1 and 3 are kohya's epochs 2 and 4
    assert [render(epoch=e, caption_dropout_every_n_epochs=2) == "" for e in range(4)] == [False, True, False, True]


def test_wildcards_choose_one_line_and_one_option_per_brace():
    text = "a {red|blue} shirt\na {long|short} skirt"
    seen = {render(text, seed=s, enable_wildcard=True) for s in range(100)}
    assert seen == {"a red shirt", "a blue shirt", "a long skirt", "a short skirt"}
    assert render(text) == "a {red|blue} shirt"  # off: first line, braces untouched


def test_doubled_braces_are_literal_braces_with_wildcards_on():
    assert render("{{x}} and {a}", enable_wildcard=True) == "{x} and a"


def test_shuffle_keeps_the_first_keep_tokens_tags_in_place():
    captions = {render(seed=s, shuffle_caption=True, keep_tokens=2) for s in range(20)}
    assert len(captions) > 1
    for caption in captions:
        assert tags_of(caption)[:2] == ["sks girl", "1girl"]
        assert sorted(tags_of(caption)) == sorted(tags_of(TAGS))


def test_the_same_seed_gives_the_same_caption():
    settings = dict(shuffle_caption=True, caption_tag_dropout_rate=0.3, caption_dropout_rate=0.1)
    assert [render(seed=s, **settings) for s in range(10)] == [render(seed=s, **settings) for s in range(10)]


def test_keep_tokens_separator_fixes_a_head_and_a_tail():
    text = "sks girl, 1girl ||| solo, smile, red shirt ||| best quality, masterpiece"
    for seed in range(10):
        tags = tags_of(render(text, seed=seed, shuffle_caption=True, keep_tokens_separator="|||"))
        assert tags[:2] == ["sks girl", "1girl"] and tags[-2:] == ["best quality", "masterpiece"]
        assert sorted(tags[2:-2]) == ["red shirt", "smile", "solo"]


def test_keep_tokens_separator_never_reaches_the_text_encoder():
    assert render("a, b ||| c", keep_tokens_separator="|||") == "a, b, c"


def test_token_warmup_grows_the_free_tags_from_the_minimum_to_all():
    settings = dict(keep_tokens=1, token_warmup_min=1, token_warmup_step=12)
    lengths = [len(tags_of(render(step=step, **settings))) for step in (0, 6, 11, 12, 50)]
    assert lengths == [2, 4, 6, 7, 7]  # 1 fixed + floor(step * (6 - 1) / 12) + 1


def test_token_warmup_below_one_is_a_fraction_of_the_run():
    subset = SubsetSpec(token_warmup_min=0, token_warmup_step=0.5)
    assert warmup_count(10, subset, step=50, max_steps=200) == 5  # warmup ends at step 100
    assert warmup_count(10, subset, step=100, max_steps=200) == 10


def test_tag_dropout_drops_free_tags_only():
    assert render(caption_tag_dropout_rate=1.0, keep_tokens=1) == "sks girl"
    kept = [len(tags_of(render(seed=s, caption_tag_dropout_rate=0.5, keep_tokens=1))) for s in range(100)]
    assert min(kept) >= 1 and max(kept) <= 7
    assert 3 < sum(kept) / len(kept) < 5  # 1 fixed + half of 6


def test_secondary_separator_joins_tags_into_one_unit_then_becomes_the_separator():
    text = "sks girl, red shirt;;blue skirt, smile"
    for seed in range(10):
        caption = render(text, seed=seed, shuffle_caption=True, secondary_separator=";;")
        assert "red shirt,blue skirt" in caption


def test_custom_separator_splits_but_tags_are_rejoined_with_comma_space():
    assert render("a; b; c", caption_separator=";", shuffle_caption=True, keep_tokens=3) == "a, b, c"


def test_tag_frequency_counts_lower_cased_comma_separated_tags():
    assert count_tags(["Sks girl, smile", "sks girl,  , RED shirt"]) == {"sks girl": 2, "smile": 1, "red shirt": 1}
