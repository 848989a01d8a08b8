"""Text conditioning as the UNet sees it: A1111-chunked token ids, encoded chunk by chunk, with CLIP skip.

The trainer and the generator both call these, so a caption conditions training exactly as the same text
conditions a sample image. `max_token_length` 75/150/225 of kohya is `max_chunks` 1/2/3 here; unlike
kohya, chunks are cut the A1111 way (comma backtrack) and only as many as the longest text needs, so
training sees what A1111 users will feed the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

import torch

from .chunking import chunk_spans, frame_chunk

if TYPE_CHECKING:
    from transformers import CLIPTokenizer


class TextModel(Protocol):
    """What `encode_prompts` reads of a model (an `SDModel` has all three), so `text` need not import `models`."""

    @property
    def tokenizer(self) -> CLIPTokenizer: ...

    @property
    def text_encoder(self) -> torch.nn.Module: ...

    @property
    def family(self) -> str: ...


def _chunks(tokenizer: CLIPTokenizer, texts: Sequence[str], max_chunks: int | None,
            family: str) -> tuple[list[list[list[int]]], list[int]]:
    """Per text: its framed 77-id chunks (at most `max_chunks`) and how many tokens were cut off."""
    token_lists = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False).input_ids
    chunked, dropped = [], []
    for ids in token_lists:
        spans = chunk_spans(ids)[:max_chunks]
        chunked.append([frame_chunk(ids[a:b], family) for a, b in spans])
        dropped.append(len(ids) - sum(b - a for a, b in spans))
    return chunked, dropped


def chunk_tokens(tokenizer: CLIPTokenizer, texts: Sequence[str], max_chunks: int | None,
                 family: str) -> torch.Tensor:
    """Token ids `[B, k, 77]`: k chunks per text, k = what the longest text needs, at most `max_chunks`.

    Shorter texts are padded with empty chunks (BOS, EOS, padding), as A1111 pads the prompts of one call.
    Tokens past `max_chunks` chunks are dropped; `dropped_tokens` counts them for a warning.
    `max_chunks` None means no limit (generation; A1111 has none).
    """
    chunked, _ = _chunks(tokenizer, texts, max_chunks, family)
    k = max(len(c) for c in chunked)
    empty = frame_chunk([], family)
    return torch.tensor([c + [empty] * (k - len(c)) for c in chunked], dtype=torch.long)


def dropped_tokens(tokenizer: CLIPTokenizer, texts: Sequence[str], max_chunks: int | None, family: str) -> list[int]:
    """Per text, how many tokens `chunk_tokens` leaves out because they do not fit in `max_chunks` chunks."""
    return _chunks(tokenizer, texts, max_chunks, family)[1]


def encode_chunks(text_encoder: torch.nn.Module, tokens: torch.Tensor, clip_skip: int | None,
                  family: str) -> torch.Tensor:
    """Hidden states `[B, 77*k, dim]` for ids `[B, k, 77]`, each chunk a separate 77-position CLIP pass.

    A1111 "Clip skip N" (SD1): the output of layer -N, then the final layer norm; N None or 1 is the
    plain last layer. SD2 ignores it, as A1111 does: its text encoder already ends at OpenCLIP's
    penultimate block. Differentiable (text-encoder training) and autocast-safe.
    """
    skip = None if family == "sd2" or clip_skip in (None, 1) else clip_skip
    layers = text_encoder.config.num_hidden_layers
    if skip is not None and not 1 <= skip <= layers:
        raise ValueError(f"clip_skip must be 1..{layers} for this text encoder, got {clip_skip}")
    batch, k, length = tokens.shape
    flat = tokens.reshape(batch * k, length).to(next(text_encoder.parameters()).device)
    out = text_encoder(flat, output_hidden_states=skip is not None)
    hidden = out.last_hidden_state if skip is None else text_encoder.final_layer_norm(out.hidden_states[-skip])
    return hidden.reshape(batch, k * length, hidden.shape[-1])


def encode_prompts(model: TextModel, texts: Sequence[str], max_chunks: int | None = 3,
                   clip_skip: int | None = None) -> torch.Tensor:
    """`chunk_tokens` then `encode_chunks` with the model's own tokenizer and text encoder."""
    tokens = chunk_tokens(model.tokenizer, texts, max_chunks, model.family)
    return encode_chunks(model.text_encoder, tokens, clip_skip, model.family)
