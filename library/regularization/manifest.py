"""manifest.jsonl: one JSON line per finished image, appended after its files are written; the record of a resume.

The folder format of `gen_reg_images.py --wordfreq`, which writes it, and of pregenerated regularization,
which reads it; it lives here, below both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.jsonl"


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The records of `path` (none when missing); a torn last line from an interruption is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record and flush it to disk; a torn last line is ended first so the record stays whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if torn else "") + json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
