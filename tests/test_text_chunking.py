"""A1111's 75-token chunks: where long prompts are cut, and how each chunk is framed to CLIP's 77 positions."""

import pytest

from library.text.chunking import BOS_ID, CHUNK_LENGTH, COMMA_ID, EOS_ID, chunk_spans, frame_chunk

W, C = 320, COMMA_ID  # "a" and ","


def test_a_short_prompt_is_one_chunk_and_an_empty_one_still_is():
    assert chunk_spans([W] * 10) == [(0, 10)]
    assert chunk_spans([W] * CHUNK_LENGTH) == [(0, 75)]
    assert chunk_spans([]) == [(0, 0)]


def test_without_commas_the_cut_falls_every_75_tokens():
    assert chunk_spans([W] * 160) == [(0, 75), (75, 150), (150, 160)]


def test_a_comma_within_the_last_20_tokens_moves_the_words_after_it_to_the_next_chunk():
    ids = [W] * 60 + [C] + [W] * 30  # the comma is token 61 of the chunk, 15 before the cut
    assert chunk_spans(ids) == [(0, 61), (61, 91)]


def test_a_comma_further_back_than_20_tokens_is_ignored():
    ids = [W] * 50 + [C] + [W] * 40  # 25 before the cut
    assert chunk_spans(ids) == [(0, 75), (75, 91)]


def test_the_comma_rule_applies_again_in_later_chunks():
    ids = [W] * 60 + [C] + [W] * 70 + [C] + [W] * 20
    first, second, third = chunk_spans(ids)
    assert first == (0, 61)
    assert second == (61, 132)  # ends right after the second comma
    assert third == (132, len(ids))


def test_a_comma_in_the_last_slot_gives_the_plain_cut():
    assert chunk_spans([W] * 74 + [C] + [W] * 10) == [(0, 75), (75, 85)]


def test_backtrack_zero_turns_the_comma_rule_off():
    assert chunk_spans([W] * 60 + [C] + [W] * 30, backtrack=0) == [(0, 75), (75, 91)]


def test_chunks_cover_every_token_once_in_order():
    ids = ([W] * 7 + [C]) * 40
    spans = chunk_spans(ids)
    assert spans[0][0] == 0 and spans[-1][1] == len(ids)
    assert all(a == b for (_, a), (b, _) in zip(spans, spans[1:]))
    assert all(0 < stop - start <= CHUNK_LENGTH for start, stop in spans)


def test_sd1_frames_with_bos_and_pads_with_eos():
    assert frame_chunk([W, W], "sd1") == [BOS_ID, W, W] + [EOS_ID] * 74
    assert frame_chunk([W] * 75, "sd1") == [BOS_ID] + [W] * 75 + [EOS_ID]


def test_sd2_pads_with_zeros_after_the_first_eos():
    assert frame_chunk([W, W], "sd2") == [BOS_ID, W, W, EOS_ID] + [0] * 73
    assert frame_chunk([], "sd2") == [BOS_ID, EOS_ID] + [0] * 75


def test_a_chunk_cannot_hold_more_than_75_tokens():
    with pytest.raises(ValueError):
        frame_chunk([W] * 76, "sd1")
