"""Did-you-mean: the nearest known name for a misspelt key, flag or choice."""

from __future__ import annotations

import difflib
from typing import Iterable


def normalize(name: str) -> str:
    """`--Learning-Rate` and `learning_rate` are the same intent."""
    return name.strip().lstrip("-").lower().replace("-", "_").replace(" ", "_")


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.72) -> str | None:
    """The closest candidate (case, dashes and spaces ignored), or None when nothing is close."""
    by_norm = {normalize(c): c for c in candidates}
    wanted = normalize(word)
    if wanted in by_norm:
        return by_norm[wanted]
    close = difflib.get_close_matches(wanted, list(by_norm), n=1, cutoff=cutoff)
    return by_norm[close[0]] if close else None
