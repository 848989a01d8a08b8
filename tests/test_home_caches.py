"""The suite writes nothing into the home folder: conftest.py points every cache the product and its libraries
keep there into this session's pytest temp folder, before test modules import those libraries."""

from __future__ import annotations

import json
import os
from pathlib import Path

from library.models.hashes import model_hashes


def test_model_hash_cache_lands_in_the_session_temp_folder(tmp_path_factory, tmp_path):
    model = tmp_path / "model.ckpt"
    model.write_bytes(bytes(range(256)) * 64)
    model_hashes(model)  # what every generate() on a file does
    cache = Path(os.environ["CERTAIN_CACHE_DIR"]) / "hashes.json"
    assert cache.is_relative_to(tmp_path_factory.getbasetemp())
    assert str(model.absolute()) in json.loads(cache.read_text(encoding="utf-8"))


def test_library_caches_were_set_before_the_libraries_read_them(tmp_path_factory):
    import huggingface_hub.constants as hub  # fixed at import: test modules importing diffusers do that early
    import matplotlib

    base = tmp_path_factory.getbasetemp()
    for folder in (hub.HF_HOME, hub.HF_HUB_CACHE, matplotlib.get_configdir(), matplotlib.get_cachedir()):
        assert Path(folder).is_relative_to(base), folder
