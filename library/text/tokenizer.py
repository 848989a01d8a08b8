"""The CLIP tokenizers of SD 1.x and SD 2.x, built from files this repository ships, never from the Hub.

SD1 (CLIP ViT-L/14) and SD2 (OpenCLIP ViT-H/14) use the same BPE vocabulary (`configs/tokenizers/clip`,
see its README for how it was made). They differ only in padding: SD1 pads with `<|endoftext|>` (49407),
SD2 with `!` (id 0), as their published tokenizer configs and A1111 do.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from library.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

CLIP_DIR = Path(__file__).resolve().parents[2] / "configs" / "tokenizers" / "clip"
MAX_LENGTH = 77
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
_PAD_TOKENS = {"sd1": EOS, "sd2": "!"}
_BPE_FILES = ("vocab.json", "merges.txt")


def special_tokens(family: str) -> dict[str, str]:
    """The special tokens of `family` ("sd1" or "sd2"); CLIP has no unknown token of its own, so it is eos."""
    if family not in _PAD_TOKENS:
        raise ValueError(f"unknown tokenizer family {family!r}; expected one of {sorted(_PAD_TOKENS)}")
    return {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": _PAD_TOKENS[family]}


def _settings(family: str) -> dict[str, Any]:
    """Loader settings. Without model_max_length it is 1e30 and pipelines pad to that."""
    return {**special_tokens(family), "model_max_length": MAX_LENGTH, "clean_up_tokenization_spaces": False}


@functools.cache
def load_tokenizer(family: str) -> CLIPTokenizer:
    """The tokenizer for `family`, loaded from local files only.

    Cached because loading parses a 49408-token vocabulary: callers share one instance and must not change it.
    """
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(CLIP_DIR, local_files_only=True, **_settings(family))


def save_tokenizer(family: str, out_dir: str | os.PathLike) -> Path:
    """Write the `tokenizer/` folder of a diffusers model (e.g. `model_dir / "tokenizer"`) and return it.

    It holds the same four files as the published SD repositories, so transformers 4 and 5 both load it.
    Everything is prepared before the first write and each file is written atomically: an error leaves no
    torn file behind.
    """
    files = {name: (CLIP_DIR / name).read_bytes() for name in _BPE_FILES}
    files["tokenizer_config.json"] = _json_bytes({"tokenizer_class": "CLIPTokenizer", **_settings(family)})
    files["special_tokens_map.json"] = _json_bytes(special_tokens(family))
    out = Path(out_dir)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    return out


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
