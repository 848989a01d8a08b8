"""Read a TOML (or JSON) config file and remember the line of every key, for messages that say `file:line`.

`tomllib` gives values but no positions, so a small scanner walks the text once more: it follows table
headers (with the index of each `[[array.of.tables]]` entry), skips strings, comments and multi-line values,
and maps each key path to its line. Keys inside inline tables fall back to the line of their parent key.
Syntax errors become `ConfigError`s with file:line:col, the offending line and a hint for the usual causes.
A JSON file must hold an object at the top, as a TOML file always does.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem, Where

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KeyPath = tuple  # ("datasets", 0, "subsets", 1, "image_dir")


@dataclass(frozen=True)
class Source:
    """A parsed config file: its data and the line of each key path."""

    path: Path
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one (e.g. for keys of inline tables)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def where(self, *path: Any) -> Where:
        return Where(str(self.path), self.line(tuple(path)))


def read_source(path: Path, role: str) -> Source:
    """Parse `path` (.toml or .json); `role` (e.g. "--dataset_config") is named when the file is missing."""
    if not path.is_file():
        raise ConfigError([Problem(Where(str(path)), f"file not found (given as {role})")])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(Where(str(path)), f"not UTF-8 text ({e.reason} at byte {e.start}); "
                                                      "save the file as UTF-8")]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError([Problem(Where(str(path), e.lineno, e.colno), f"JSON syntax error: {e.msg}")]) from None
        if not isinstance(data, dict):
            raise ConfigError([Problem(Where(str(path)), _json_top_level_problem(data, role))])
        return Source(path, data)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_problem(path, text, str(e), role)]) from None
    return Source(path, data, scan(text).lines)


_JSON_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}


def _json_top_level_problem(data: Any, role: str) -> str:
    """A JSON config whose top level is not an object ({...}), which every config file must be."""
    what = (' with `general`/`datasets`, like {"general": {...}, "datasets": [{"subsets": [...]}]}'
            if role == "--dataset_config" else ', like {"key": value, ...}')
    return f"the top level must be a JSON object{what}; this file holds {_JSON_KINDS.get(type(data), 'another value')}"


@dataclass
class Scan:
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicate_at: int | None = None  # first line whose key path was already seen
    open_at: int | None = None  # line where the last unclosed string/array/inline table began


def scan(text: str) -> Scan:
    """Map every key path and table header to its 1-based line."""
    result = Scan()
    counts: dict[KeyPath, int] = {}  # array-of-tables path -> entries seen
    table: KeyPath = ()
    depth, string = 0, None  # open brackets / open multi-line string delimiter across lines

    def record(path: KeyPath, number: int) -> None:
        if path in result.lines and result.duplicate_at is None:
            result.duplicate_at = number
        result.lines.setdefault(path, number)

    for number, line in enumerate(text.splitlines(), 1):
        start = 0
        if string:
            start = _close(line, 0, string)
            if start < 0:
                continue
            string = None
        elif depth == 0:
            stripped = line.strip()
            if stripped.startswith("["):
                table = _header(stripped, counts) or table
                record(table, number)
                continue
            eq = _outside_quotes(line, "=")
            keys = _keys(line[:eq]) if eq > 0 else None
            if keys is None:
                continue
            record(table + keys, number)
            start, result.open_at = eq + 1, number
        depth, string = _scan_value(line, start, depth)
    return result


def _header(stripped: str, counts: dict[KeyPath, int]) -> KeyPath | None:
    array = stripped.startswith("[[")
    inner = stripped[2 if array else 1:]
    keys = _keys(inner[:_outside_quotes(inner, "]")])
    if not keys:
        return None
    parent = _resolve(keys[:-1], counts)
    if not array:
        return _resolve(keys, counts)
    path = parent + (keys[-1],)
    counts[path] = counts.get(path, 0) + 1
    return path + (counts[path] - 1,)


def _resolve(keys: KeyPath, counts: dict[KeyPath, int]) -> KeyPath:
    """Insert the current index after each array-of-tables name: datasets.subsets -> datasets, 2, subsets."""
    path: KeyPath = ()
    for k in keys:
        path += (k,)
        if path in counts:
            path += (counts[path] - 1,)
    return path


def _keys(text: str) -> KeyPath | None:
    """The parts of a (dotted, possibly quoted) key, decoded by tomllib itself."""
    if not text.strip():
        return None
    try:
        node: Any = tomllib.loads(f"{text.strip()} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts = []
    while isinstance(node, dict):
        (name, node), = node.items()
        parts.append(name)
    return tuple(parts)


def _outside_quotes(line: str, char: str) -> int:
    """Index of the first `char` outside quotes and before a comment, or -1."""
    i = 0
    while i < len(line):
        c = line[i]
        if c in "\"'":
            end = _close(line, i + 1, c)
            i = len(line) if end < 0 else end
            continue
        if c == "#":
            return -1
        if c == char:
            return i
        i += 1
    return -1


def _close(line: str, start: int, delim: str) -> int:
    """Index just past the closing `delim` (backslash escapes in "basic" strings), or -1."""
    i = start
    while i < len(line):
        if delim[0] == '"' and line[i] == "\\":
            i += 2
            continue
        if line.startswith(delim, i):
            return i + len(delim)
        i += 1
    return -1


def _scan_value(line: str, i: int, depth: int) -> tuple[int, str | None]:
    """Follow a value to the end of the line: returns open bracket depth and an open multi-line string."""
    while i < len(line):
        c = line[i]
        if c == "#":
            break
        if c in "\"'":
            delim = c * 3 if line.startswith(c * 3, i) else c
            end = _close(line, i + len(delim), delim)
            if end < 0:
                return depth, delim if len(delim) == 3 else None
            i = end
            continue
        depth += (c in "[{") - (c in "]}")
        i += 1
    return depth, None


_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def _syntax_problem(path: Path, text: str, message: str, role: str) -> Problem:
    match = _POSITION.search(message)
    reason = message[:match.start()] if match else message
    lines = text.splitlines() or [""]
    if match and match.group(1):
        line_no, col = int(match.group(1)), int(match.group(2))
    else:  # tomllib reports duplicate keys and unclosed values "at end of document": find the line ourselves
        found = scan(text)
        line_no = (found.duplicate_at if "overwrite" in reason else found.open_at) or len(lines)
        col = None
    line_text = lines[line_no - 1] if line_no <= len(lines) else ""
    hint = syntax_hint(reason, line_text, unclosed=col is None and "overwrite" not in reason,
                       dataset_config=role == "--dataset_config")
    return Problem(Where(str(path), line_no, col),
                   f"TOML syntax error: {reason}.{' ' + hint if hint else ''}\n    {line_text.strip()}")


def syntax_hint(reason: str, line: str, unclosed: bool = False, dataset_config: bool = False) -> str:
    """The likely cause of a TOML syntax error in a hand-written or forum-copied config."""
    value = line.partition("=")[2].split("#")[0].strip()
    if unclosed:
        return "The value starting on this line is never closed: check for a missing `]`, `}` or quote."
    if "\\" in line and ("escape" in reason.lower() or "Unescaped" in reason or "hex" in reason):
        return ("Inside \"double quotes\" a backslash starts an escape: write Windows paths in 'single quotes' "
                "or with forward slashes (\"D:/train/img\").")
    if "overwrite" in reason or "twice" in reason:
        return "A key or table is given twice; keep one" + (
            " (each dataset starts with its own [[datasets]])." if dataset_config else ".")
    if "Expected '=' after a key" in reason:
        if ":" in line:
            return "TOML writes `key = value`, not `key: value`."
        return "A key needs `= value`; keys with spaces need quotes."
    if "Unterminated string" in reason:
        return "A string is missing its closing quote."
    if "Invalid value" in reason:
        if value in ("True", "False", "TRUE", "FALSE"):
            return f"TOML booleans are lowercase: {value.lower()}."
        if value in ("None", "null", "none", "nil"):
            return "TOML has no null: delete the line to use the default."
        if not value:
            return "The value is missing after `=`."
        if re.fullmatch(r"[^\s\"'\[\]{}]+", value):
            return f"Strings need quotes: \"{value}\"."
        return "Check the quotes and brackets of this value."
    if "Expected newline or end of document" in reason and "," in value and not value.startswith("["):
        return f"One value per key; a list needs brackets: [{value}] (or quotes for a string)."
    return ""
