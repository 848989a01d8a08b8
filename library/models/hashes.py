"""A1111-compatible model hashes, cached so a multi-gigabyte checkpoint is read once.

- legacy: the pre-2023 "Model hash" (8 hex): SHA-256 of the 64 KiB at offset 1 MiB.
- sha256: the whole file; its first 10 hex are A1111's short hash, which Civitai calls AutoV2.

The cache (`$CERTAIN_CACHE_DIR/hashes.json`, default `~/.cache/certain-strategy/hashes.json`) is keyed by
absolute path and trusted only while the file's size and mtime_ns are unchanged. A missing or corrupt
cache is rebuilt silently: it only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from library.atomic import atomic_write_text
from library.errors import UserError

LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
BLOCK_SIZE = 1 << 20
CACHE_FILE_NAME = "hashes.json"


@dataclass(frozen=True)
class ModelHashes:
    """A1111's hashes of one model file: full SHA-256 hex and the 8-hex legacy hash."""

    sha256: str
    legacy: str

    @property
    def autov2(self) -> str:
        """What A1111 writes as `Model hash:` since 2023 and Civitai calls AutoV2."""
        return self.sha256[:10]


def legacy_hash(path: str | os.PathLike) -> str:
    """A1111's old hash. A file under 1 MiB hashes whatever the window holds, possibly nothing."""
    with _open(path) as f:
        f.seek(LEGACY_OFFSET)
        return hashlib.sha256(f.read(LEGACY_LENGTH)).hexdigest()[:8]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the whole file, read in 1 MiB blocks so memory stays flat."""
    digest = hashlib.sha256()
    with _open(path) as f:
        while block := f.read(BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def model_hashes(path: str | os.PathLike) -> ModelHashes:
    """Both hashes of `path`, from the cache when the file is unchanged since it was last hashed."""
    key = str(Path(path).absolute())
    stamp = _stamp(path)
    cache_file = _cache_file()
    cache = _read_cache(cache_file)
    cached = _from_entry(cache.get(key), stamp)
    if cached is not None:
        return cached
    # The stamp is taken before reading, so a file that changes while it is hashed never matches this entry.
    hashes = ModelHashes(sha256=file_sha256(path), legacy=legacy_hash(path))
    cache[key] = {"stamp": stamp, **asdict(hashes)}
    _write_cache(cache_file, cache)
    return hashes


def _cache_file() -> Path:
    """CERTAIN_CACHE_DIR moves the cache (tests, shared machines); by default it lives in ~/.cache."""
    root = os.environ.get("CERTAIN_CACHE_DIR") or Path.home() / ".cache" / "certain-strategy"
    return Path(root) / CACHE_FILE_NAME


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _stamp(path: str | os.PathLike) -> list[int]:
    """[size, mtime_ns]: a list, because that is what it reads back as from JSON."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return [st.st_size, st.st_mtime_ns]


def _unreadable(path: str | os.PathLike, exc: OSError) -> UserError:
    if isinstance(exc, FileNotFoundError):
        return UserError(f"Model file not found: {path}")
    return UserError(f"Cannot read model file {path}: {exc.strerror or exc}")


def _from_entry(entry: Any, stamp: list[int]) -> ModelHashes | None:
    """The cached hashes if `entry` is well formed and was made from this very file version."""
    if not isinstance(entry, dict) or entry.get("stamp") != stamp:
        return None
    sha256, legacy = entry.get("sha256"), entry.get("legacy")
    if not (isinstance(sha256, str) and isinstance(legacy, str)):
        return None
    return ModelHashes(sha256=sha256, legacy=legacy)


def _read_cache(cache_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, cache: dict[str, Any]) -> None:
    try:
        atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache location costs a re-hash next time, nothing more
