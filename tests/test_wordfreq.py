"""Word-frequency lists and the word sampler (issue 7, shared with issue 5's word-frequency mode).

Samples are embedded in the real tagcomplete format (rows copied from danbooru.csv) so the tests need no shared data.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from library.errors import UserError
from library.regularization import (WordList, WordSampler, chi_square, chi_square_sf, load_tag_csv, load_text_list,
                                    load_word_list, prompt_form, words_from_captions)

TAG_CSV = '''1girl,0,6008644,"1girls,sole_female"
highres,5,5256195,"high_res,high_resolution,hires"
solo,0,5000954,"female_solo,solo_female"
long_hair,0,4350743,"/lh,longhair"
breasts,0,3439214,"/b,boobs,breast,breats,oppai,tits"
photoshop_(medium),5,706507,
:d,0,549710,
official_alternate_costume,0,329149,"alternate_costume_(official),official_alternate_outfit"
fate_(series),3,324179,
star_(symbol),0,237573,
hatsune_miku,4,150000,miku
^_^,0,90000,
;),0,40000,
'''


@pytest.fixture
def tag_csv(tmp_path):
    path = tmp_path / "danbooru.csv"
    path.write_text(TAG_CSV, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- prompt form


@pytest.mark.parametrize("tag, expected", [
    ("long_hair", "long hair"),
    ("star_(symbol)", r"star \(symbol\)"),
    (r"star \(symbol\)", r"star \(symbol\)"),
    ("star (symbol)", r"star \(symbol\)"),
    (":d", ":d"),
    ("^_^", "^_^"),
    (">_<", ">_<"),
    ("o_o", "o_o"),
    (";)", r";\)"),
    ("  long__hair ", "long hair"),
])
def test_prompt_form(tag, expected):
    assert prompt_form(tag) == expected
    assert prompt_form(expected) == expected  # idempotent


# ---------------------------------------------------------------------------------------------- tag CSV


def test_tag_csv_general_only_by_default(tag_csv):
    words = load_tag_csv(tag_csv)
    assert words.words[:4] == ("1girl", "solo", "long hair", "breasts")
    assert "highres" not in words.words and r"fate \(series\)" not in words.words  # meta / copyright
    assert "hatsune miku" not in words.words  # character
    assert words.as_dict()[r"star \(symbol\)"] == 237573
    assert words.as_dict()[":d"] == 549710 and words.as_dict()["^_^"] == 90000
    assert words.as_dict()["official alternate costume"] == 329149  # quoted alias list kept in one field
    assert list(words.counts) == sorted(words.counts, reverse=True)
    assert "13 tag rows read; kept 9, removed 4 not of types [0]" in words.source


def test_tag_csv_type_filters(tag_csv):
    assert load_tag_csv(tag_csv, types=None).total == sum(int(r.split(",")[2]) for r in TAG_CSV.splitlines())
    copyright_and_meta = load_tag_csv(tag_csv, types=("copyright", 5))
    assert set(copyright_and_meta.words) == {"highres", r"photoshop \(medium\)", r"fate \(series\)"}
    assert load_tag_csv(tag_csv, types=[4]).words == ("hatsune miku",)


def test_tag_csv_min_count_top_k_and_excludes(tag_csv, tmp_path):
    assert load_tag_csv(tag_csv, min_count=1_000_000).words == ("1girl", "solo", "long hair", "breasts")
    assert load_tag_csv(tag_csv, top_k=2).words == ("1girl", "solo")
    excluded = load_tag_csv(tag_csv, exclude=["breasts", "*_(symbol)", "LONG HAIR"])  # tag or prompt form, any case
    assert "breasts" not in excluded.words and r"star \(symbol\)" not in excluded.words
    assert "long hair" not in excluded.words and "1girl" in excluded.words
    assert "official alternate costume" in load_tag_csv(tag_csv, exclude=["*alternate"]).words  # whole-word match
    patterns = tmp_path / "exclude.txt"
    patterns.write_text("# adult\nbreasts\n\n1girl*\n", encoding="utf-8")
    from_file = load_tag_csv(tag_csv, exclude_file=patterns)
    assert "breasts" not in from_file.words and "1girl" not in from_file.words and "solo" in from_file.words


def test_tag_csv_three_columns_and_duplicates_add(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("long_hair,0,10\nlong hair,0,5\n\n", encoding="utf-8")
    assert load_tag_csv(path).as_dict() == {"long hair": 15}


@pytest.mark.parametrize("content, line, needle", [
    ("1girl,0,100,\nsolo,0,12.5,\n", 2, "post_count '12.5' is not an integer"),
    ("1girl,0,100,\nsolo,general,5,\n", 2, "type 'general' is not an integer"),
    ("1girl,0,100,\n,0,5,\n", 2, "empty tag name"),
    ("1girl,0,100,\nsolo,0,5,a,b\n", 2, "quote the aliases"),
    ("1girl,0,100,\nsolo,0,-5,\n", 2, "negative"),
    ("1girl,0\nsolo,0\n", 1, "without post counts"),
])
def test_tag_csv_malformed_rows(tmp_path, content, line, needle):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_tag_csv(path)
    assert f"{path}, line {line}:" in str(error.value) and needle in str(error.value)


def test_tag_csv_errors_say_what_filtered_everything(tag_csv, tmp_path):
    with pytest.raises(UserError, match=r"13 tag rows read, but the filters removed every word: 12 not of types "
                                        r"\[1, 4\]; 1 with count below min_count=200000"):
        load_tag_csv(tag_csv, types=["artist", "character"], min_count=200_000)
    with pytest.raises(UserError, match=r"removed every word: 4 not of types \[0\]; "
                                        r"9 matching exclude patterns \['\*'\]"):
        load_tag_csv(tag_csv, exclude="*")
    empty = tmp_path / "empty.csv"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"empty.csv: no words found \(0 tag rows read\)"):
        load_tag_csv(empty)
    zero = tmp_path / "zero.csv"
    zero.write_text("a,0,0,\nb,0,0,\n", encoding="utf-8")
    with pytest.raises(UserError, match="every count is 0"):
        load_tag_csv(zero)
    with pytest.raises(UserError, match="unknown tag type 'nsfw'"):
        load_tag_csv(tag_csv, types=["nsfw"])
    with pytest.raises(UserError, match="cannot read the tag CSV"):
        load_tag_csv(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------------------------- captions


def _dataset(root):
    (root / "10_alice").mkdir(parents=True)
    (root / "10_alice" / "nested").mkdir()
    (root / "1_bg").mkdir()
    (root / "notes").mkdir()
    (root / "10_alice" / "a.txt").write_text("alice, 1girl, long_hair, star (symbol), , solo\n", encoding="utf-8")
    (root / "10_alice" / "b.txt").write_text(r" alice,1girl ,long hair, star \(symbol\), 1girl", encoding="utf-8")
    (root / "10_alice" / "nested" / "c.txt").write_text("alice, smile\nalice, :d", encoding="utf-8")
    (root / "1_bg" / "d.caption").write_text("scenery, no_humans", encoding="utf-8")
    (root / "1_bg" / "e.txt").write_text("scenery,no humans,", encoding="utf-8")
    (root / "notes" / "todo.txt").write_text("not a caption", encoding="utf-8")


def test_words_from_captions(tmp_path):
    _dataset(tmp_path)
    words = words_from_captions(tmp_path)
    assert words.as_dict() == {"alice": 3, "1girl": 2, "long hair": 2, r"star \(symbol\)": 2, "solo": 1,
                               "smile": 1, ":d": 1, "scenery": 1, "no humans": 1}
    assert "4 caption files (*.txt)" in words.source
    other = words_from_captions([tmp_path / "1_bg"], caption_extension=".caption")
    assert other.as_dict() == {"scenery": 1, "no humans": 1}
    assert words_from_captions(tmp_path, exclude=["alice"], min_count=2).words == \
        ("1girl", "long hair", r"star \(symbol\)")


def test_words_from_captions_errors(tmp_path):
    (tmp_path / "5_x").mkdir()
    (tmp_path / "5_x" / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"no words found \(0 caption files \(\*\.txt\)\); put \.txt captions"):
        words_from_captions(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        words_from_captions(tmp_path / "missing")
    (tmp_path / "5_x" / "a.txt").write_text("sks", encoding="utf-8")
    with pytest.raises(UserError, match=r"1 caption files.*removed every word: 1 matching exclude patterns \['sks'\]"):
        words_from_captions(tmp_path, exclude=["sks"])


# ---------------------------------------------------------------------------------------------- text lists


@pytest.mark.parametrize("content", [
    "long_hair 40\nsmile 10\nstar (symbol) 5\n",
    "long_hair,40\nsmile,10\n# comment\n\nstar_(symbol),5\n",
    "long hair\t30\nsmile\t10\nlong_hair\t10\nstar \\(symbol\\)\t5\n",
])
def test_text_list_formats(tmp_path, content):
    path = tmp_path / "words.txt"
    path.write_text(content, encoding="utf-8")
    assert load_text_list(path).as_dict() == {"long hair": 40, "smile": 10, r"star \(symbol\)": 5}


def test_bare_word_list_is_uniform(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("cat\ndog\n1girl\nblue sky\n", encoding="utf-8")
    assert load_text_list(path).as_dict() == {"cat": 1, "dog": 1, "1girl": 1, "blue sky": 1}


@pytest.mark.parametrize("content, needle", [
    ("cat 3\ndog\n", r"line 2: 'dog' has no count while line 1 has one"),
    ("cat 3\ndog 2.5\n", r"line 2: count '2.5' is not a whole number"),
    ("cat 3\ndog -2\n", r"line 2: count -2 is negative"),
    ("# only a comment\n\n", r"no words found \(0 lines read\)"),
    ("cat 0\ndog 0\n", r"2 words read but every count is 0"),
])
def test_text_list_errors(tmp_path, content, needle):
    path = tmp_path / "words.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=needle):
        load_text_list(path)


def test_load_word_list_dispatch(tmp_path, tag_csv):
    _dataset(tmp_path / "data")
    assert load_word_list(tmp_path / "data").as_dict()["alice"] == 3
    assert load_word_list(tag_csv, top_k=1).words == ("1girl",)
    assert load_word_list(tag_csv, types="meta").words == ("highres", r"photoshop \(medium\)")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("cat,3\ndog,1\n", encoding="utf-8")
    assert load_word_list(pairs).as_dict() == {"cat": 3, "dog": 1}
    with pytest.raises(UserError, match="no such file or folder"):
        load_word_list(tmp_path / "nope")
    with pytest.raises(UserError, match="tag types only apply to a tag CSV"):
        load_word_list(pairs, types=[0])


# ---------------------------------------------------------------------------------------------- sampler


WORDS = WordList(("1girl", "solo", "long hair", "smile", r"star \(symbol\)", ":d"),
                 (600, 500, 435, 287, 24, 5), "test")


def test_frequencies_match_target():
    n = 20000
    sampler = WordSampler(WORDS, seed=1234)
    observed = Counter(sampler.draw(n))
    expected = sampler.expected_frequencies()
    assert math.isclose(sum(expected.values()), 1.0)
    assert expected["1girl"] == pytest.approx(600 / 1851)
    statistic, dof, p_value = chi_square(observed, WORDS)
    assert dof == 5 and p_value > 0.001
    for word, p in expected.items():
        if p > 0.1:
            assert abs(observed[word] / n - p) / p < 0.05
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(observed[word] - n * p) < 5 * sigma


def test_frequencies_alpha_zero_is_uniform():
    sampler = WordSampler(WORDS, seed=7, alpha=0)
    observed = Counter(sampler.draw(6000))
    assert all(p == pytest.approx(1 / 6) for p in sampler.expected_frequencies().values())
    assert chi_square(observed, WORDS, alpha=0)[2] > 0.001
    half = WordSampler(WORDS, seed=7, alpha=0.5)
    assert chi_square(Counter(half.draw(6000)), WORDS, alpha=0.5)[2] > 0.001


def test_chi_square_detects_wrong_distribution():
    wrong = Counter(WordSampler(WordList(WORDS.words, (1,) * 6, "uniform"), seed=3).draw(5000))
    assert chi_square(wrong, WORDS)[2] < 1e-6


def test_determinism_and_resume():
    first = WordSampler(WORDS, seed=42).draw(300)
    assert WordSampler(WORDS, seed=42).draw(300) == first
    assert WordSampler(WORDS, seed=43).draw(300) != first
    running = WordSampler(WORDS, seed=42)
    running.draw(100)
    state = json.loads(json.dumps(running.state_dict()))  # survives a JSON checkpoint
    continued = running.draw(50)
    resumed = WordSampler(WORDS, seed=0)
    resumed.load_state_dict(state)
    assert resumed.drawn == 100 and resumed.seed == 42
    assert resumed.draw(50) == continued == first[100:150]


def test_resume_against_another_list_fails():
    state = WordSampler(WORDS, seed=1).state_dict()
    other = WordSampler(WordList(("cat",), (1,), "other"), seed=1)
    with pytest.raises(UserError, match="different word list"):
        other.load_state_dict(state)
    with pytest.raises(UserError, match="alpha must be"):
        WordSampler(WORDS, seed=1, alpha=-1)


# ---------------------------------------------------------------------------------------------- chi-square


def test_chi_square_hand_value():
    # expected 50/50, observed 30/70: (20²+20²)/50 = 16 on 1 dof; P = erfc(sqrt(8))
    statistic, dof, p_value = chi_square({"a": 30, "b": 70}, WordList(("a", "b"), (1, 1), "hand"))
    assert (statistic, dof) == (16.0, 1)
    assert p_value == pytest.approx(math.erfc(math.sqrt(8)), rel=1e-9)
    assert p_value == pytest.approx(6.334248366623996e-05, rel=1e-9)


def test_chi_square_pools_rare_words():
    words = WordList(("a", "b", "c", "d"), (50, 48, 1, 1), "rare")
    statistic, dof, _ = chi_square({"a": 50, "b": 48, "c": 1, "d": 1}, words)
    assert dof == 1  # c and d pooled (expected 2), then merged into b


@pytest.mark.parametrize("statistic, dof, expected", [
    (3.841458820694124, 1, 0.05),  # textbook critical values
    (18.307038053275146, 10, 0.05),
    (6.6348966010212145, 1, 0.01),
    (2.0, 2, math.exp(-1)),
])
def test_chi_square_sf_known_values(statistic, dof, expected):
    assert chi_square_sf(statistic, dof) == pytest.approx(expected, rel=1e-9)


def test_chi_square_sf_against_closed_forms():
    for x in (0.01, 0.5, 1, 3, 10, 40):
        assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9, abs=1e-300)
    for k, x in ((2, 7.0), (8, 3.0), (20, 25.0), (1000, 1000.0), (1000, 1100.0), (400, 300.0)):
        a, half = k // 2, x / 2  # even dof: Q(a, x/2) = e^{-x/2} Σ_{i<a} (x/2)^i / i!
        terms = [i * math.log(half) - half - math.lgamma(i + 1) for i in range(a)]
        top = max(terms)
        closed = math.exp(top) * sum(math.exp(t - top) for t in terms)
        assert chi_square_sf(x, k) == pytest.approx(closed, rel=1e-8)
