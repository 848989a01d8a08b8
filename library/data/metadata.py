"""fine_tune.py's metadata subsets: captions and tags of each image in one JSON (or JSON-lines) file.

JSON: `{"<image key>": {"caption": str, "tags": str, "image_size": [w, h]}}`; JSON lines: one object per
line with `image_path` and the same fields. Keys are absolute or relative to `image_dir`; kohya's
preparation scripts write keys without an extension by default, so `0001` finds `0001.png` (or .jpg, ...).
Tags are appended to the caption (to each line with wildcards on). `image_size` is not trusted: the size
comes from the image header, which also proves the file is there and readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config.dataset_spec import SubsetSpec
from ..errors import UserError
from ..image_files import IMAGE_EXTENSIONS
from .items import Scan, add_probed

FIELDS = ("caption", "tags")


def scan_metadata(subset: SubsetSpec) -> Scan:
    file = Path(subset.metadata_file)
    base = Path(subset.image_dir) if subset.image_dir else None
    scan = Scan()
    found = []
    for key, record in read_metadata(file).items():
        path = _image_path(key, base, file)
        if not path.is_file():
            scan.problems.append(f"{path}: not found (listed in {file})")
            continue
        tags = record.get("tags") or ""
        found.append((path, caption_with_tags(record.get("caption") or "", tags, subset), tags))
    return add_probed(scan, found)


def read_metadata(file: Path) -> dict[str, dict[str, Any]]:
    """Image key -> record, from .json or .jsonl; a malformed file is a UserError naming file and place."""
    if not file.is_file():
        raise UserError(f"metadata file not found: {file} (key `metadata_file` / `in_json`): give the JSON "
                        "written by sd-scripts' merge_captions_to_metadata.py / merge_dd_tags_to_metadata.py")
    text = file.read_text(encoding="utf-8-sig")
    if file.suffix.lower() == ".jsonl":
        records = {}
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                record = _record(_parse(line, file, number), file, f"line {number}")
                if not isinstance(record.get("image_path"), str):
                    raise UserError(f"{file}:{number}: each line needs \"image_path\": \"<image file>\"")
                records[record["image_path"]] = record
        return records
    data = _parse(text, file, None)
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a JSON object {{\"<image>\": {{\"caption\": ..., \"tags\": ...}}}}")
    return {key: _record(value, file, f"entry {key!r}") for key, value in data.items()}


def _parse(text: str, file: Path, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{file}:{line}" if line else f"{file}:{exc.lineno}:{exc.colno}"
        raise UserError(f"{where}: not valid JSON ({exc.msg})") from None


def _record(value: Any, file: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{file}: {where} must be an object like {{\"caption\": \"...\", \"tags\": \"...\"}}")
    for name in FIELDS:
        if value.get(name) is not None and not isinstance(value[name], str):
            raise UserError(f"{file}: {where}: \"{name}\" must be a string, not {json.dumps(value[name])}")
    return value


def _image_path(key: str, base: Path | None, file: Path) -> Path:
    path = Path(key)
    if not path.is_absolute():
        if base is None:
            raise UserError(f"{file}: image key {key!r} is relative, so the subset needs `image_dir` (with "
                            "in_json: `train_data_dir`), the folder the keys are relative to")
        path = base / path
    if path.suffix.lower() in IMAGE_EXTENSIONS or path.is_file():
        return path
    return next((c for c in (path.with_name(path.name + e) for e in IMAGE_EXTENSIONS) if c.is_file()), path)


def caption_with_tags(caption: str, tags: str, subset: SubsetSpec) -> str:
    """The caption, then the separator and the tags (with wildcards on, after each line)."""
    if not tags:
        return caption
    separator = subset.caption_separator
    if subset.enable_wildcard:
        tags = tags.replace("\n", separator)
        lines = [line for line in caption.split("\n") if line.strip()] or [""]
    else:
        lines = [caption]
    return "\n".join(f"{line}{separator} {tags}" if line else tags for line in lines)
