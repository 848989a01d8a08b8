"""Word-frequency mode: single-word prompts drawn in proportion to frequency, resumable without duplicates.

The folder holds `<index>-<seed>.png` + `.txt` (the word), `manifest.jsonl` (what is done) and
`wordfreq_state.json`: the words drawn so far and the sampler state after them, so a rerun with a larger
--count continues the exact same word sequence. Image i has seed base + i; the sampler is seeded with base.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import UserError
from ..regularization import WordSampler, load_word_list
from ..regularization.manifest import MANIFEST, append_record, read_manifest
from .resumable import SavedImage, complete_set, required_count

STATE = "wordfreq_state.json"


def drawn_words(source: str, seed: int, count: int, state_path: Path) -> list[str]:
    """The first `count` words of the sequence of `seed`, continuing (and saving) the sampler's state."""
    saved = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else None
    if saved is not None and saved["seed"] != seed:
        raise UserError(f"{state_path} was made with seed {saved['seed']}, not {seed}; use another --outdir")
    words = list(saved["words"]) if saved else []
    if len(words) < count:
        sampler = WordSampler(load_word_list(source), seed)
        if saved:
            sampler.load_state_dict(saved["state"])
        words += [str(w) for w in sampler.draw(count - len(words))]
        state = {"seed": seed, "source": str(source), "words": words, "state": sampler.state_dict()}
        atomic_write_text(state_path, json.dumps(state, ensure_ascii=False))
    return words[:count]


def run_wordfreq(args: argparse.Namespace) -> list[Path]:
    """Images 0 … count−1, image i of word i; those in the manifest whose file exists are kept."""
    count, folder = required_count(args), Path(args.outdir)
    if not Path(args.wordfreq).exists():
        raise UserError(f"word list or dataset folder not found: {args.wordfreq}")
    manifest = folder / MANIFEST
    records = read_manifest(manifest)
    finished = {int(r["index"]): (folder / r["file"], int(r["seed"])) for r in records
                if (folder / r["file"]).is_file()}

    def record(image: SavedImage) -> None:
        append_record(manifest, {"index": image.index, "word": image.prompt, "seed": image.seed,
                                 "file": image.file.name, "model_hash": image.model_hash})

    return complete_set(args, count, finished, lambda seed: drawn_words(args.wordfreq, seed, count, folder / STATE),
                        record)
