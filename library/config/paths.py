"""Paths named in configs: where a relative path is looked up, and what to say when nothing is there.

kohya opens relative paths from the working directory; so do we. When nothing is there but the path exists
next to the config file that names it (a config kept together with its data), we use that one and say so in a
note. A missing path is a problem at the line that names it, with the places looked in and, when the folder
above exists, the nearest name in it (`10_sks gril` -> `10_sks girl`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import Report, Where
from .suggest import did_you_mean
from .values import show


def resolve_path(given: str, at: Where, named_in: str) -> tuple[Path, str | None]:
    """The path to use, and a note when it was found next to the file (`named_in`, e.g. "the args file")."""
    path = Path(given)
    if path.is_absolute() or path.exists() or not at.in_file:
        return path, None
    beside = Path(at.file).parent / path
    if beside.exists():
        return beside, f"{show(given)} read from next to {named_in}: {beside}"
    return path, None


def path_problem(path: Path, given: str, at: Where, folder: bool) -> str | None:
    """What is wrong with `path` (it must be a folder, or a file), or None when it is fine."""
    kind = "folder" if folder else "file"
    if path.is_dir() if folder else path.is_file():
        return None
    if path.exists():
        return f"not a {kind}: {path} is a {'file' if folder else 'folder'}"
    places = "" if path.is_absolute() else (
        f" (a relative path is looked up in the working directory {Path.cwd()}"
        + (f" and next to {Path(at.file).name}" if at.in_file else "") + ")")
    return f"{kind} not found: {given}{places}{_nearest(path)}"


def _nearest(path: Path) -> str:
    parent = path.parent
    if path.name in ("", ".", "..") or not parent.is_dir():
        return ""
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        return ""
    guess = did_you_mean(path.name, names)
    return f". Did you mean {show(str(parent / guess))}?" if guess else ""


def checked_path(given: str, key: str, at: Where, folder: bool, named_in: str, report: Report) -> str | None:
    """The path to use (`given`, or where it was found next to the file), or None with a problem
    `FILE:LINE: key `image_dir`: folder not found: ...`."""
    path, note = resolve_path(given, at, named_in)
    problem = path_problem(path, given, at, folder)
    if problem:
        report.problem(at, f"key `{key}`: {problem}", key)
        return None
    if note:
        report.note(at, f"`{key}` {note}")
        return str(path)
    return given
