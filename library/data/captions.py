"""Captions: read once from caption files, then rendered per sample in kohya's order.

Rendering is a pure function of the caption text, the subset's settings, the sample's seed and where
training is (epoch, optimizer step), so a batch can be rebuilt exactly in a worker process or after resume.
kohya's order: prefix/suffix -> whole-caption dropout -> wildcard / line choice -> split on the separator,
fixed head (keep_tokens or text before keep_tokens_separator) and fixed tail (after a second separator),
token warmup, shuffle, tag dropout -> re-join with ", " -> secondary separator replaced.

Two deliberate differences: the keep_tokens_separator is removed even when nothing is shuffled (kohya then
feeds "|||" to the text encoder), and empty tags from doubled or trailing separators are dropped.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

from ..config.dataset_spec import SubsetSpec
from .problems import Unusable

WILDCARD = re.compile(r"\{\{|\}\}|\{([^}]+)\}")  # "{{" and "}}" are literal braces


def read_caption_file(path: Path, enable_wildcard: bool) -> str | None:
    """None without a file, "" for an empty one. Only the first non-empty line counts, unless wildcards are
    on: then every non-empty line is kept, one is chosen per sample."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unusable(f"caption is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if enable_wildcard:
        return "\n".join(lines)
    return lines[0] if lines else ""


def render_caption(text: str, subset: SubsetSpec, seed: int, *, epoch: int, step: int, max_steps: int) -> str:
    """The caption one sample trains with. `epoch` counts from 0 (kohya's caption_dropout_every_n_epochs
    counts from 1, so epoch index e drops when (e + 1) is a multiple of N); `step` is the optimizer steps
    done so far and `max_steps` the run's total (token_warmup_step below 1 is a fraction of it)."""
    rng = random.Random(f"caption:{seed}")
    caption = " ".join(part for part in (subset.caption_prefix, text, subset.caption_suffix) if part)
    if _dropped(subset, rng, epoch):
        return ""
    caption = _choose(caption, rng) if subset.enable_wildcard else caption.split("\n")[0]
    if _rearranged(subset, caption):
        caption = _rearrange(caption, subset, rng, step, max_steps)
    if subset.secondary_separator:
        caption = caption.replace(subset.secondary_separator, subset.caption_separator)
    return caption


def _dropped(subset: SubsetSpec, rng: random.Random, epoch: int) -> bool:
    if subset.caption_dropout_rate > 0 and rng.random() < subset.caption_dropout_rate:
        return True
    every = subset.caption_dropout_every_n_epochs
    return every > 0 and (epoch + 1) % every == 0


def _choose(caption: str, rng: random.Random) -> str:
    """enable_wildcard: one random line, then one random option of each `{a|b|c}`."""
    line = rng.choice(caption.split("\n"))

    def pick(match: re.Match) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return rng.choice(match.group(1).split("|"))

    return WILDCARD.sub(pick, line)


def _rearranged(subset: SubsetSpec, caption: str) -> bool:
    marker = subset.keep_tokens_separator
    return bool(subset.shuffle_caption or subset.token_warmup_step > 0 or subset.caption_tag_dropout_rate > 0
                or (marker and marker in caption))


def _rearrange(caption: str, subset: SubsetSpec, rng: random.Random, step: int, max_steps: int) -> str:
    head, body, tail = fixed_and_free(caption, subset)
    body = body[:warmup_count(len(body), subset, step, max_steps)]
    if subset.shuffle_caption:
        rng.shuffle(body)
    if subset.caption_tag_dropout_rate > 0:
        body = [tag for tag in body if rng.random() >= subset.caption_tag_dropout_rate]
    return ", ".join(head + body + tail)


def fixed_and_free(caption: str, subset: SubsetSpec) -> tuple[list[str], list[str], list[str]]:
    """(fixed head, free tags, fixed tail). With keep_tokens_separator in the caption, the text before it is
    the head and the text after a second one the tail; otherwise the first keep_tokens tags are the head."""
    marker, separator = subset.keep_tokens_separator, subset.caption_separator
    if marker and marker in caption:
        head, _, rest = caption.partition(marker)
        body, _, tail = rest.partition(marker)
        return _tags(head, separator), _tags(body, separator), _tags(tail, separator)
    tags = _tags(caption, separator)
    return tags[:subset.keep_tokens], tags[subset.keep_tokens:], []


def _tags(text: str, separator: str) -> list[str]:
    return [tag.strip() for tag in text.split(separator) if tag.strip()]


def warmup_count(free_tags: int, subset: SubsetSpec, step: int, max_steps: int) -> int:
    """Token warmup: how many free tags a caption keeps at `step`; from token_warmup_min up to all of them
    at token_warmup_step (a step count, or below 1 a fraction of `max_steps`)."""
    warmup = subset.token_warmup_step
    if warmup < 1:
        warmup = math.floor(warmup * max_steps)
    if not warmup or step >= warmup:
        return free_tags
    return math.floor(step * (free_tags - subset.token_warmup_min) / warmup) + subset.token_warmup_min


def count_tags(captions: list[str]) -> dict[str, int]:
    """kohya's ss_tag_frequency for one folder: comma-split, stripped, lower-cased tag -> occurrences."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in caption.split(","):
            tag = tag.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return counts
