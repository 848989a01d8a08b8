"""Prompt files: A1111 infotext blocks separated by blank lines; `#` lines are comments."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..sampling.infotext import request_from_infotext
from ..sampling.request import GenerationRequest

COMPARABLE_ANALYSIS = Path(__file__).resolve().parents[2] / "configs" / "comparable_analysis.txt"


def split_blocks(text: str) -> list[str]:
    """The infotext blocks of `text`: comment lines dropped, blocks split at blank lines."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return ["\n".join(block) for block in blocks if block]


def parse_prompt_blocks(text: str) -> list[GenerationRequest]:
    """One request per infotext block (settings the block leaves out take A1111's txt2img defaults)."""
    return [request_from_infotext(block) for block in split_blocks(text)]


def load_prompts(path: str | os.PathLike | None = None) -> list[GenerationRequest]:
    """The requests of a prompt file; None: the shipped Comparable Analysis prompts and settings."""
    path = Path(path) if path is not None else COMPARABLE_ANALYSIS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read the prompts file {path}: {error.strerror or error}") from error
    requests = parse_prompt_blocks(text)
    if not requests:
        raise UserError(f"the prompts file {path} has no prompts (infotext blocks separated by blank lines)")
    return requests
