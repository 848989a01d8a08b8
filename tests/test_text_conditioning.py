"""Text conditioning: chunked token ids from captions, and their CLIP encoding with A1111's CLIP skip."""

import pytest
import torch

from library.text.chunking import BOS_ID, EOS_ID
from library.text.conditioning import chunk_tokens, dropped_tokens, encode_chunks, encode_prompts
from library.text.tokenizer import load_tokenizer
from library.tiny import build_tiny

A, CAT, COMMA = 320, 2368, 267


@pytest.fixture(scope="module")
def sd1():
    return build_tiny("sd1", seed=3)


@pytest.fixture(scope="module")
def sd2():
    return build_tiny("sd2", seed=4)


def words(word: str, n: int) -> str:
    return " ".join([word] * n)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_a_short_prompt_gives_exactly_the_tokenizers_padded_ids(family):
    tok = load_tokenizer(family)
    ids = chunk_tokens(tok, ["a photo of a cat"], max_chunks=3, family=family)
    assert ids.shape == (1, 1, 77)
    assert ids[0, 0].tolist() == tok("a photo of a cat", padding="max_length").input_ids


def test_a_100_token_prompt_becomes_two_framed_chunks():
    ids = chunk_tokens(load_tokenizer("sd1"), [words("a", 100)], max_chunks=3, family="sd1")
    first, second = ids[0].tolist()
    assert first == [BOS_ID] + [A] * 75 + [EOS_ID]
    assert second == [BOS_ID] + [A] * 25 + [EOS_ID] * 51


def test_the_words_after_a_late_comma_move_to_the_next_chunk():
    text = words("a", 60) + ", " + words("cat", 30)
    first, second = chunk_tokens(load_tokenizer("sd1"), [text], max_chunks=3, family="sd1")[0].tolist()
    assert first == [BOS_ID] + [A] * 60 + [COMMA] + [EOS_ID] * 15
    assert second == [BOS_ID] + [CAT] * 30 + [EOS_ID] * 46


def test_sd2_chunks_are_zero_padded_after_eos():
    first, second = chunk_tokens(load_tokenizer("sd2"), [words("a", 100)], max_chunks=3, family="sd2")[0].tolist()
    assert first == [BOS_ID] + [A] * 75 + [EOS_ID]
    assert second == [BOS_ID] + [A] * 25 + [EOS_ID] + [0] * 50


def test_the_batch_gets_as_many_chunks_as_its_longest_text_needs():
    ids = chunk_tokens(load_tokenizer("sd1"), ["a cat", words("a", 100)], max_chunks=3, family="sd1")
    assert ids.shape == (2, 2, 77)
    assert ids[0, 1].tolist() == [BOS_ID] + [EOS_ID] * 76  # an empty chunk, as A1111 pads


def test_tokens_past_max_chunks_are_dropped_and_counted():
    tok, texts = load_tokenizer("sd1"), [words("a", 200), "a cat"]
    assert chunk_tokens(tok, texts, max_chunks=2, family="sd1").shape == (2, 2, 77)
    assert dropped_tokens(tok, texts, max_chunks=2, family="sd1") == [50, 0]
    assert dropped_tokens(tok, texts, max_chunks=None, family="sd1") == [0, 0]
    assert chunk_tokens(tok, texts, max_chunks=None, family="sd1").shape == (2, 3, 77)


def test_each_chunk_is_encoded_on_its_own_and_concatenated(sd1):
    ids = chunk_tokens(sd1.tokenizer, [words("a", 100)], max_chunks=3, family="sd1")
    with torch.no_grad():
        both = encode_chunks(sd1.text_encoder, ids, None, "sd1")
        alone = [encode_chunks(sd1.text_encoder, ids[:, i:i + 1], None, "sd1") for i in range(2)]
    assert both.shape == (1, 154, sd1.text_encoder.config.hidden_size)
    torch.testing.assert_close(both, torch.cat(alone, dim=1), rtol=0, atol=1e-6)


def test_clip_skip_2_is_the_penultimate_layer_through_the_final_layer_norm(sd1):
    ids = chunk_tokens(sd1.tokenizer, ["a photo of a cat"], 1, "sd1")
    te = sd1.text_encoder
    with torch.no_grad():
        out = te(ids[0], output_hidden_states=True)
        by_hand = te.final_layer_norm(out.hidden_states[-2])
        torch.testing.assert_close(encode_chunks(te, ids, 2, "sd1"), by_hand, rtol=0, atol=0)
        torch.testing.assert_close(encode_chunks(te, ids, 1, "sd1"), out.last_hidden_state, rtol=0, atol=0)
        torch.testing.assert_close(encode_chunks(te, ids, None, "sd1"), out.last_hidden_state, rtol=0, atol=0)


def test_sd2_ignores_clip_skip_as_a1111_does(sd2):
    ids = chunk_tokens(sd2.tokenizer, ["a photo of a cat"], 1, "sd2")
    with torch.no_grad():
        torch.testing.assert_close(encode_chunks(sd2.text_encoder, ids, 2, "sd2"),
                                   sd2.text_encoder(ids[0]).last_hidden_state, rtol=0, atol=0)


def test_clip_skip_beyond_the_encoders_depth_is_refused(sd1):
    ids = chunk_tokens(sd1.tokenizer, ["a cat"], 1, "sd1")
    with pytest.raises(ValueError, match="clip_skip"):
        encode_chunks(sd1.text_encoder, ids, sd1.text_encoder.config.num_hidden_layers + 1, "sd1")


def test_gradients_reach_the_text_encoder_for_text_encoder_training(sd1):
    te = sd1.text_encoder
    te.zero_grad()
    encode_prompts(sd1, ["a photo of a cat", words("a", 90)], max_chunks=2, clip_skip=2).square().mean().backward()
    assert te.embeddings.token_embedding.weight.grad.abs().sum() > 0
    te.zero_grad()


def test_encoding_works_under_autocast(sd1):
    with torch.no_grad():
        plain = encode_prompts(sd1, ["a photo of a cat"], clip_skip=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = encode_prompts(sd1, ["a photo of a cat"], clip_skip=2)
    torch.testing.assert_close(mixed.float(), plain, rtol=0.05, atol=0.05)
