"""kohya's sample prompt files (`--sample_prompts`) as generation requests.

    .txt   masterpiece, 1girl --n lowres, bad hands --w 512 --h 768 --d 114514 --l 11 --s 28 --ss euler_a
           (one prompt a line; empty lines and lines starting with # are skipped)
    .toml  [prompt] shared keys, then [[prompt.subset]] entries; a subset key overrides the shared one
    .json  a list of lines as above, or of tables

Tables use kohya's internal names: prompt, negative_prompt, width, height, seed, sample_steps, scale,
sample_sampler. As in kohya, sizes are rounded down to a multiple of 8 (at least 64) and steps are kept
within 1..1000. Unlike kohya, mistakes are reported (all of them, as FILE:LINE) instead of skipped:
an unknown option, an unknown sampler (kohya silently falls back to DDIM), a value that is not a number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config.errors import ConfigError, Problem, Where
from ..config.suggest import did_you_mean
from ..config.toml_source import read_source
from ..config.values import BadValue, to_float, to_int, to_str
from ..errors import UserError
from .request import GenerationRequest

ROLE = "--sample_prompts"
LINE_OPTIONS = {"n": "negative_prompt", "w": "width", "h": "height", "d": "seed", "l": "scale",
                "s": "sample_steps", "ss": "sample_sampler"}
_OTHER_MODELS = {"g", "cn", "ctr", "rcfg", "fs"}  # kohya options of SDXL/SD3/FLUX/ControlNet scripts
KEYS = ("prompt", *LINE_OPTIONS.values())
_HINTS = {"steps": "sample_steps", "cfg_scale": "scale", "sampler": "sample_sampler"}  # generator names → kohya's


def load_sample_prompts(path: str | os.PathLike, *, default_size: tuple[int, int] = (512, 512),
                        default_sampler: str = "euler_a") -> list[GenerationRequest]:
    """Every request in the file; `default_size` is (width, height). Raises `ConfigError` listing all problems."""
    path = Path(path)
    reader = {".txt": _txt_entries, ".json": _json_entries, ".toml": _toml_entries}.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: sample prompt files are .txt, .toml or .json")
    entries = reader(path)
    requests, problems = [], []
    for where, entry in entries:
        try:
            if not isinstance(entry, (str, dict)):
                raise UserError("each entry is a prompt line (text) or a table")
            fields = parse_line(entry) if isinstance(entry, str) else entry
            requests.append(to_request(fields, default_size=default_size, default_sampler=default_sampler))
        except UserError as e:
            problems.append(Problem(where, str(e)))
    if problems:
        raise ConfigError(problems, what=f"the sample prompt file {path}")
    return requests


def parse_line(line: str) -> dict[str, str]:
    """kohya's line syntax → {internal name: raw text}: the prompt, then ` --x value` options."""
    prompt, *options = line.split(" --")
    fields = {"prompt": prompt.strip()}
    for option in options:
        name, _, value = option.partition(" ")
        key = LINE_OPTIONS.get(name.lower())
        if key is None:
            raise UserError(_unknown_option(name))
        fields[key] = value.strip()
    return fields


def to_request(fields: Mapping[str, Any], *, default_size: tuple[int, int] = (512, 512),
               default_sampler: str = "euler_a") -> GenerationRequest:
    """A request from kohya's internal names; values may be text (from a line) or TOML/JSON numbers."""
    unknown = [k for k in fields if k not in KEYS]
    if unknown:
        hint = _HINTS.get(unknown[0]) or did_you_mean(unknown[0], KEYS)
        advice = f"did you mean {hint!r}?" if hint else f"known: {', '.join(KEYS)}"
        raise UserError(f"unknown key {unknown[0]!r}; {advice}")
    if not isinstance(fields.get("prompt"), str):
        raise UserError("every entry needs a `prompt` (text)")

    def get(key: str, convert: Callable[[str, Any], Any], default: Any = None) -> Any:
        return convert(key, fields[key]) if fields.get(key) not in (None, "") else default

    return GenerationRequest(
        prompt=fields["prompt"], negative_prompt=get("negative_prompt", _text, ""),
        width=_size(get("width", _int, default_size[0])), height=_size(get("height", _int, default_size[1])),
        steps=max(1, min(1000, get("sample_steps", _int, 30))), cfg_scale=get("scale", _float, 7.5),
        seed=get("seed", _int), sampler=get("sample_sampler", _text, default_sampler))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (given as {ROLE})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def _txt_entries(path: Path) -> list[tuple[Where, Any]]:
    """Each prompt line with its line number."""
    lines = _read_text(path).splitlines()
    return [(Where(str(path), number), line.strip()) for number, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith("#")]


def _json_entries(path: Path) -> list[tuple[Where, Any]]:
    """A JSON list of prompt lines or tables."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ConfigError([Problem(Where(str(path), e.lineno, e.colno), f"JSON syntax error: {e.msg}")]) from None
    if not isinstance(data, list):
        raise ConfigError([Problem(Where(str(path)), "expected a JSON list of prompt lines or tables")])
    return [(Where(f"{path} (item {i + 1})"), item.strip() if isinstance(item, str) else item)
            for i, item in enumerate(data)]


def _toml_entries(path: Path) -> list[tuple[Where, Any]]:
    """`[prompt]` + `[[prompt.subset]]`, each subset merged over the shared keys."""
    source = read_source(path, ROLE)
    table = source.data.get("prompt")
    subsets = table.get("subset") if isinstance(table, dict) else None
    if not isinstance(subsets, list) or not subsets:
        raise ConfigError([Problem(source.where("prompt"), "expected a [prompt] table with [[prompt.subset]] entries")])
    shared = {k: v for k, v in table.items() if k != "subset"}
    return [(source.where("prompt", "subset", i), {**shared, **subset} if isinstance(subset, dict) else subset)
            for i, subset in enumerate(subsets)]


def _unknown_option(name: str) -> str:
    if name.lower() in _OTHER_MODELS:
        return f"option --{name} is for SDXL/SD3/FLUX/ControlNet sample prompts; SD 1.x/2.x has no use for it"
    known = " ".join(f"--{k}" for k in LINE_OPTIONS)
    return f"unknown option --{name} (known: {known}); a literal ' --' cannot appear in a prompt"


def _converter(convert: Callable[[Any, bool], tuple[Any, Any]]) -> Callable[[str, Any], Any]:
    """The config package's value converters (leniently: "7" and 7.0 pass as 7), with the key in the message."""
    def parse(key: str, value: Any) -> Any:
        try:
            return convert(value, True)[0]
        except BadValue as e:
            raise UserError(f"{key}: {e}") from None
    return parse


_text, _int, _float = _converter(to_str), _converter(to_int), _converter(to_float)


def _size(value: int) -> int:
    """kohya: round down to a multiple of 8, at least 64."""
    return max(64, value - value % 8)
