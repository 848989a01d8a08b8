"""A1111's 75-token chunking of long prompts, as pure functions on token ids (no torch, no tokenizer).

CLIP sees 77 positions: BOS, 75 tokens, EOS. A1111 (`sd_hijack_clip.tokenize_line`) cuts longer prompts
into chunks of 75 and encodes each on its own. When a cut would split a phrase, it moves the words after
the last comma into the next chunk, provided that comma lies within the last `backtrack` (default 20)
positions. Chunks are always contiguous runs of the token list, so `chunk_spans` returns index ranges:
callers slice ids and, for emphasis, per-token weights with the same ranges.
"""

from __future__ import annotations

from typing import Sequence

BOS_ID = 49406
EOS_ID = 49407
COMMA_ID = 267  # ",</w>"
CHUNK_LENGTH = 75
BACKTRACK = 20  # A1111 setting "Prompt word wrap length limit" (comma_padding_backtrack)
_PAD_AFTER_EOS = {"sd1": EOS_ID, "sd2": 0}  # SD2 (OpenCLIP) pads with zeros after the first EOS


def chunk_spans(ids: Sequence[int], backtrack: int = BACKTRACK) -> list[tuple[int, int]]:
    """`[start, stop)` ranges of `ids`, one per chunk, cut exactly as A1111 cuts them.

    An empty input still makes one (empty) chunk: A1111 encodes "" as one padded chunk. `backtrack` 0
    turns the comma rule off (plain cuts every 75 tokens).
    """
    spans: list[tuple[int, int]] = []
    start, last_comma = 0, -1  # last_comma: index of the last comma, relative to `start`
    for i, token in enumerate(ids):
        length = i - start
        if token == COMMA_ID:
            last_comma = length
        elif backtrack and length == CHUNK_LENGTH and last_comma != -1 and length - last_comma <= backtrack:
            spans.append((start, start + last_comma + 1))
            start, last_comma = start + last_comma + 1, -1
        if i - start == CHUNK_LENGTH:
            spans.append((start, i))
            start, last_comma = i, -1
    if start < len(ids) or not spans:
        spans.append((start, len(ids)))
    return spans


def frame_chunk(tokens: Sequence[int], family: str) -> list[int]:
    """BOS + tokens + EOS, padded to 77 the way `family` pads (SD1: EOS; SD2: 0 after the first EOS)."""
    if len(tokens) > CHUNK_LENGTH:
        raise ValueError(f"a chunk holds at most {CHUNK_LENGTH} tokens, got {len(tokens)}")
    row = [BOS_ID, *tokens] + [EOS_ID] * (CHUNK_LENGTH + 1 - len(tokens))
    pad = _PAD_AFTER_EOS[family]
    first_eos = row.index(EOS_ID)
    return row[: first_eos + 1] + [pad] * (len(row) - first_eos - 1)
