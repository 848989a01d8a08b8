"""Prompt weights on tokens, A1111's chunking of weighted prompts, "Original" emphasis, and the prompt CLI."""

import json

import pytest
import torch

from library.prompts import main
from library.text.chunking import BOS_ID, COMMA_ID, EOS_ID
from library.text.emphasis import apply_emphasis, break_spans, tokenize_weighted, weighted_chunks
from library.text.prompt_parser import parse_prompt_attention
from library.text.tokenizer import load_tokenizer

A, B, CAT, DOG = 320, 321, 2368, 1929  # "a", "b", "cat", "dog": one token each


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("sd1")


def frame(tokens, weights=None):
    """The expected 77-long rows of ids and of weights (default 1.0 per token) for one SD1 chunk."""
    pad = 76 - len(tokens)
    weights = [1.0] * len(tokens) if weights is None else weights
    return [BOS_ID, *tokens] + [EOS_ID] * pad, [1.0, *weights] + [1.0] * pad


def rows(*chunks):
    """`frame` for each `(tokens, weights)` chunk, gathered as (all id rows, all weight rows)."""
    framed = [frame(*chunk) for chunk in chunks]
    return [ids for ids, _ in framed], [weights for _, weights in framed]


def chunks_of(tok, text, family="sd1"):
    ids, weights = weighted_chunks(tok, text, family)
    return ids.tolist(), weights.tolist()


def test_every_token_carries_its_fragments_weight(tok):
    assert tokenize_weighted(tok, parse_prompt_attention("(cat:1.5) dog")) == ([CAT, DOG], [1.5, 1.0], [])


def test_a_break_is_a_position_in_the_ids_not_a_token(tok):
    assert tokenize_weighted(tok, parse_prompt_attention("a BREAK [b]")) == ([A, B], [1.0, 1 / 1.1], [1])


def test_a_break_inside_brackets_is_just_the_word(tok):
    ids, weights, breaks = tokenize_weighted(tok, parse_prompt_attention("(a BREAK b)"))
    assert breaks == [] and len(ids) == 3 and ids[0] == A and ids[2] == B
    assert weights == [1.1, -1.1, 1.1]  # A1111 quirk: the word keeps the marker's weight, -1 * 1.1


def test_a_short_prompt_is_one_chunk_with_weight_one_on_bos_eos_and_padding(tok):
    assert chunks_of(tok, "(cat:1.5) dog") == rows(([CAT, DOG], [1.5, 1.0]))


def test_the_empty_prompt_is_one_padded_chunk(tok):
    assert chunks_of(tok, "") == rows(([],))


def test_without_commas_a_long_prompt_is_cut_every_75_tokens(tok):
    assert chunks_of(tok, "a " * 70 + "(dog:1.25) " * 10) == rows(
        ([A] * 70 + [DOG] * 5, [1.0] * 70 + [1.25] * 5),
        ([DOG] * 5, [1.25] * 5),
    )


def test_with_a_comma_near_the_cut_the_words_after_it_move_to_the_next_chunk(tok):
    # the comma is token 61, 15 before the cut at 75: the 14 dogs before the cut move with the rest
    assert chunks_of(tok, "a " * 60 + ", " + "(dog:1.5) " * 30) == rows(
        ([A] * 60 + [COMMA_ID],),
        ([DOG] * 30, [1.5] * 30),
    )


def test_a_comma_further_back_than_20_tokens_does_not_move_anything(tok):
    assert chunks_of(tok, "a " * 50 + ", " + "dog " * 40) == rows(([A] * 50 + [COMMA_ID] + [DOG] * 24,), ([DOG] * 16,))


def test_break_starts_a_new_chunk(tok):
    assert chunks_of(tok, "a BREAK (b:2)") == rows(([A],), ([B], [2.0]))


@pytest.mark.parametrize("prompt, sizes", [
    ("BREAK a", [0, 1]),  # a leading BREAK closes an empty chunk
    ("a BREAK BREAK b", [1, 0, 1]),
    ("a BREAK", [1]),  # a trailing BREAK adds nothing
    ("a BREAK BREAK", [1, 0]),
    ("BREAK", [0]),
])
def test_break_closes_the_current_chunk_even_an_empty_one(tok, prompt, sizes):
    ids, _, breaks = tokenize_weighted(tok, parse_prompt_attention(prompt))
    assert [stop - start for start, stop in break_spans(ids, breaks)] == sizes
    assert len(chunks_of(tok, prompt)[0]) == len(sizes)


def test_break_resets_the_75_token_count(tok):
    assert chunks_of(tok, "a " * 74 + "BREAK " + "b " * 76) == rows(([A] * 74,), ([B] * 75,), ([B],))


def test_sd2_pads_ids_with_zeros_but_weights_stay_one(tok):
    ids, weights = weighted_chunks(load_tokenizer("sd2"), "(cat:1.5)", "sd2")
    assert ids.tolist() == [[BOS_ID, CAT, EOS_ID] + [0] * 74]
    assert weights.tolist() == [[1.0, 1.5] + [1.0] * 75]


def hidden(batch=2, k=2, channels=8, seed=0):
    return torch.randn(batch, 77 * k, channels, generator=torch.Generator().manual_seed(seed)) + 0.5


def test_emphasis_multiplies_then_restores_each_chunks_mean_over_the_batch():
    z = hidden()
    weights = torch.rand(2, 2, 77, generator=torch.Generator().manual_seed(1)) + 0.5
    out = apply_emphasis(z, weights)
    for j in range(2):
        chunk, w = z[:, 77 * j:77 * (j + 1)], weights[:, j]
        expected = chunk * w[..., None] * (chunk.mean() / (chunk * w[..., None]).mean())
        assert torch.allclose(out[:, 77 * j:77 * (j + 1)], expected, rtol=1e-6, atol=1e-7)
        assert torch.allclose(out[:, 77 * j:77 * (j + 1)].mean(), chunk.mean(), rtol=1e-5)


def test_weight_one_everywhere_leaves_z_unchanged():
    z = hidden()
    assert torch.equal(apply_emphasis(z, torch.ones(2, 2, 77)), z)


def test_an_unweighted_chunk_is_untouched_by_weights_in_another():
    z = hidden()
    weights = torch.ones(2, 2, 77)
    weights[:, 1, 5] = 1.5
    out = apply_emphasis(z, weights)
    assert torch.equal(out[:, :77], z[:, :77]) and not torch.equal(out[:, 77:], z[:, 77:])


def test_cli_prints_parsed_fragments_and_chunks_as_json(capsys):
    assert main(["--json", "a (cat:1.5), dog BREAK [b]"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parsed"] == [["a ", 1.0], ["cat", 1.5], [", dog", 1.0], ["BREAK", -1], ["", 1.0],
                                ["b", 1 / 1.1]]
    first, second = report["chunks"]
    assert (first["ids"], first["weights"]) == frame([A, CAT, COMMA_ID, DOG], [1.0, 1.5, 1.0, 1.0])
    assert first["tokens"] == 4 and second["tokens"] == 1
    assert second["ids"] == frame([B])[0] and second["weights"][1] == pytest.approx(1 / 1.1)
    assert report["token_count"] == 76  # the WebUI counter: 75 for the closed chunk + 1


def test_cli_sd2_and_readable_view(capsys):
    assert main(["--family", "sd2", "--json", "cat"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"][0]["ids"][3:] == [0] * 74
    assert main(["(cat:1.5) dog"]) == 0
    text = capsys.readouterr().out
    assert "chunk 1: 2/75 tokens" in text and "cat</w>" in text and "1.5" in text
