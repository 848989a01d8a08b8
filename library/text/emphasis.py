"""A1111's prompt weights on tokens and on CLIP hidden states (`sd_hijack_clip`, `sd_emphasis.EmphasisOriginal`).

Each parsed fragment is tokenized on its own and every token carries its fragment's weight. Tokens are cut
into 75-token chunks with `chunking.chunk_spans` (comma backtrack); a `("BREAK", -1)` fragment closes the
current chunk, even an empty one. BOS, EOS and padding weigh 1.0. After encoding, "Original" emphasis
multiplies each hidden state by its weight and rescales each chunk back to its former mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from .chunking import chunk_spans, frame_chunk
from .prompt_parser import BREAK, parse_prompt_attention

if TYPE_CHECKING:
    from transformers import CLIPTokenizer


def tokenize_weighted(tokenizer: CLIPTokenizer, parsed: Sequence[tuple[str, float]]
                      ) -> tuple[list[int], list[float], list[int]]:
    """Token ids (no BOS/EOS), one weight per token, and the positions in `ids` where a BREAK falls.

    Only the exact `("BREAK", -1)` entry is a break: a BREAK inside brackets (weight -1.1) is the word.
    """
    token_lists = tokenizer([text for text, _ in parsed], add_special_tokens=False, truncation=False,
                            verbose=False).input_ids
    ids: list[int] = []
    weights: list[float] = []
    breaks: list[int] = []
    for (text, weight), tokens in zip(parsed, token_lists):
        if (text, weight) == BREAK:
            breaks.append(len(ids))
            continue
        ids += tokens
        weights += [float(weight)] * len(tokens)
    return ids, weights, breaks


def break_spans(ids: Sequence[int], breaks: Sequence[int]) -> list[tuple[int, int]]:
    """`[start, stop)` ranges of `ids`, one per chunk: `chunk_spans` within each BREAK-separated segment.

    Every BREAK closes a chunk, even an empty one; a trailing BREAK adds no empty chunk, as in A1111.
    """
    bounds = [0, *breaks, len(ids)]
    spans: list[tuple[int, int]] = []
    segments = list(zip(bounds, bounds[1:]))
    if len(segments) > 1 and segments[-1][0] == len(ids):
        segments.pop()  # nothing after the last BREAK
    for start, stop in segments:
        spans += [(start + a, start + b) for a, b in chunk_spans(ids[start:stop])]
    return spans


def weighted_spans(tokenizer: CLIPTokenizer, parsed: Sequence[tuple[str, float]]
                   ) -> tuple[list[int], list[float], list[tuple[int, int]]]:
    """Token ids, one weight per token and each chunk's `[start, stop)` range of a parsed prompt."""
    ids, weights, breaks = tokenize_weighted(tokenizer, parsed)
    return ids, weights, break_spans(ids, breaks)


def frame_weighted(ids: Sequence[int], weights: Sequence[float], spans: Sequence[tuple[int, int]],
                   family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `[k, 77]` (long) and their weights `[k, 77]` (float32): each span framed with BOS, EOS and padding."""
    rows = [frame_chunk(ids[a:b], family) for a, b in spans]
    row_weights = [[1.0, *weights[a:b]] + [1.0] * (76 - (b - a)) for a, b in spans]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(row_weights, dtype=torch.float32)


def weighted_chunks(tokenizer: CLIPTokenizer, text: str, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `[k, 77]` (long) and their weights `[k, 77]` (float32) for one prompt, cut as A1111 cuts it."""
    return frame_weighted(*weighted_spans(tokenizer, parse_prompt_attention(text)), family)


def apply_emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111 "Original" emphasis on hidden states `z [B, 77k, C]` with `weights [B, k, 77]`.

    Per chunk (over the whole batch, as A1111 encodes one call): `z * w`, then rescaled by
    `mean(z) / mean(z * w)` so the chunk's mean is restored. Types promote as in A1111 (fp16 z, fp32 w: fp32).
    """
    batch, k, length = weights.shape
    chunks = z.reshape(batch, k, length, z.shape[-1])
    original = chunks.float().mean(dim=(0, 2, 3), keepdim=True)  # means in fp32: bf16 sums can cancel to 0
    weighted = chunks * weights.to(z.device)[..., None]
    new = weighted.float().mean(dim=(0, 2, 3), keepdim=True)
    ratio = torch.where(new == 0, torch.ones_like(new), original / new)  # a zero mean has nothing to restore
    restored = weighted * ratio.to(weighted.dtype)
    return restored.reshape(batch, k * length, z.shape[-1])
