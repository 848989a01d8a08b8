"""The offline CLIP tokenizers give the exact ids of SD1's CLIP ViT-L/14 and pad like SD1 / SD2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from library.text.tokenizer import load_tokenizer, save_tokenizer

REPO = Path(__file__).resolve().parents[1]
BOS, EOS = 49406, 49407
CAT = [BOS, 320, 1125, 539, 320, 2368, EOS]
FAMILIES = ["sd1", "sd2"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "text, ids",
    [
        ("a photo of a cat", CAT),
        ("sks", [BOS, 48136, EOS]),
        ("a photo of sks dog", [BOS, 320, 1125, 539, 48136, 1929, EOS]),
    ],
)
def test_known_prompts_give_the_reference_ids(family, text, ids):
    assert load_tokenizer(family)(text).input_ids == ids


@pytest.mark.parametrize("family", FAMILIES)
def test_vocabulary_and_special_tokens(family):
    tok = load_tokenizer(family)
    assert len(tok) == 49408
    assert (tok.bos_token, tok.bos_token_id) == ("<|startoftext|>", BOS)
    assert (tok.eos_token, tok.eos_token_id) == ("<|endoftext|>", EOS)
    assert tok.model_max_length == 77


def test_sd1_pads_with_endoftext():
    ids = load_tokenizer("sd1")("a photo of a cat", padding="max_length").input_ids
    assert ids == CAT + [EOS] * (77 - len(CAT))


def test_sd2_pads_with_exclamation_mark_id_0_after_eos():
    tok = load_tokenizer("sd2")
    assert (tok.pad_token, tok.pad_token_id) == ("!", 0)
    assert tok("a photo of a cat", padding="max_length").input_ids == CAT + [0] * (77 - len(CAT))


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_keeps_bos_first_and_eos_last(family):
    ids = load_tokenizer(family)("cat " * 100, truncation=True).input_ids
    assert len(ids) == 77
    assert ids[0] == BOS and ids[-1] == EOS


def test_loaded_tokenizer_is_cached_per_family():
    assert load_tokenizer("sd1") is load_tokenizer("sd1")
    assert load_tokenizer("sd1") is not load_tokenizer("sd2")


def test_unknown_family_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="sdxl"):
        load_tokenizer("sdxl")
    with pytest.raises(ValueError, match="sdxl"):
        save_tokenizer("sdxl", tmp_path / "tokenizer")
    assert not (tmp_path / "tokenizer").exists()


def test_loads_with_hub_offline_and_no_network(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1, an empty HF cache and sockets that refuse to connect."""
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from library.text.tokenizer import load_tokenizer\n"
        "print(load_tokenizer('sd2')('a photo of a cat').input_ids)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(CAT)


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_folder_round_trips_through_from_pretrained(family, tmp_path):
    folder = save_tokenizer(family, tmp_path / "model" / "tokenizer")
    assert folder == tmp_path / "model" / "tokenizer"
    assert sorted(p.name for p in folder.iterdir()) == [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    reloaded = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    original = load_tokenizer(family)
    for text in ["a photo of sks dog", "(red:1.2) [blue] BREAK, 1girl"]:
        assert reloaded(text, padding="max_length").input_ids == original(text, padding="max_length").input_ids
    assert (reloaded.model_max_length, reloaded.pad_token_id) == (77, original.pad_token_id)
