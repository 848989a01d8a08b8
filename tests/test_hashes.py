"""A1111-compatible model hashes and their on-disk cache."""

import hashlib
import json
import os

import pytest

from library.errors import UserError
from library.models import hashes
from library.models.hashes import ModelHashes, file_sha256, legacy_hash, model_hashes

MIB = 1 << 20


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache folder; the real home is never touched."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CERTAIN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def model(tmp_path):
    """A ~2 MiB file of known bytes whose 251-byte period does not line up with the 64 KiB window."""
    path = tmp_path / "model.ckpt"
    size = 2 * MIB + 12345
    path.write_bytes((bytes(range(251)) * (size // 251 + 1))[:size])
    return path


@pytest.fixture
def sha_calls(monkeypatch):
    """Counts whole-file hash computations."""
    calls = []
    real = hashes.file_sha256
    monkeypatch.setattr(hashes, "file_sha256", lambda path: calls.append(path) or real(path))
    return calls


def test_hashes_match_a_hand_computation(model):
    data = model.read_bytes()
    full = hashlib.sha256(data).hexdigest()
    assert file_sha256(model) == full
    assert legacy_hash(model) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert model_hashes(model) == ModelHashes(sha256=full, legacy=legacy_hash(model))
    assert model_hashes(model).autov2 == full[:10]


def test_small_files_hash_what_the_legacy_window_holds(tmp_path):
    short = tmp_path / "short.bin"
    short.write_bytes(b"x" * (MIB + 10))
    assert legacy_hash(short) == hashlib.sha256(b"x" * 10).hexdigest()[:8]
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(b"abc")
    assert legacy_hash(tiny) == hashlib.sha256(b"").hexdigest()[:8]


def test_missing_file_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    for fn in (file_sha256, legacy_hash, model_hashes):
        with pytest.raises(UserError, match="nope.safetensors"):
            fn(missing)


def test_second_call_comes_from_the_cache(model, sha_calls, cache_dir):
    first = model_hashes(model)
    assert model_hashes(model) == first
    assert len(sha_calls) == 1
    assert str(model) in json.loads((cache_dir / "hashes.json").read_text())


def test_changed_size_is_rehashed(model, sha_calls):
    model_hashes(model)
    with open(model, "ab") as f:
        f.write(b"more")
    assert model_hashes(model).sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert len(sha_calls) == 2


def test_changed_mtime_is_rehashed_even_with_the_same_size(model, sha_calls):
    before = model_hashes(model)
    data = bytearray(model.read_bytes())
    data[0] ^= 0xFF
    stat = model.stat()
    model.write_bytes(bytes(data))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = model_hashes(model)
    assert after.sha256 == hashlib.sha256(bytes(data)).hexdigest() != before.sha256
    assert len(sha_calls) == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"%s": {"stamp": "x"}}', "\xff\xfe"])
def test_corrupt_cache_is_rebuilt_silently(model, cache_dir, sha_calls, content):
    cache_dir.mkdir()
    (cache_dir / "hashes.json").write_text(content.replace("%s", str(model)), encoding="latin-1")
    assert model_hashes(model).sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert model_hashes(model).sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert len(sha_calls) == 1


def test_cache_lives_in_certain_cache_dir(model, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("CERTAIN_CACHE_DIR", str(other))
    model_hashes(model)
    assert [p.name for p in other.iterdir()] == ["hashes.json"]


def test_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Cannot read model file"):
        model_hashes(tmp_path)
