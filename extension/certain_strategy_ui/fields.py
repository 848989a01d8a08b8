"""The page's fields checked before any job sees them: folder names stay names (no `..`, no separators) and paths
are resolved and must exist, so a job starts only on what the user meant and the message says what was wrong."""

from __future__ import annotations

import re
from pathlib import Path

from .jobs import JobError

FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def folder_name(text: str, what: str) -> str:
    """`text` as a folder name under the output folder."""
    if not FOLDER_NAME.match(text or ""):
        raise JobError(f"{what} {text!r}: use letters, digits, '.', '_' or '-' (up to 64), e.g. my-anime-ft")
    return text


def existing_path(text: str, what: str, folder: bool | None = None) -> Path:
    """`text` resolved to an absolute path that exists (a folder when `folder`, a file when False, either when
    None)."""
    if not (text or "").strip():
        raise JobError(f"{what}: empty; give a path")
    path = Path(text.strip()).expanduser().resolve()
    if folder is None and path.exists() or folder and path.is_dir() or folder is False and path.is_file():
        return path
    kind = {True: "folder", False: "file", None: "file or folder"}[folder]
    raise JobError(f"{what}: no such {kind}: {path}")
