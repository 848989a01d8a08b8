"""Read a kohya args file (`--config_file`): option values, flat or in free-form one-level tables.

kohya lifts every table's keys to the top and drops the table names, then ignores anything it does not
know. We keep the flattening (so forum configs with [model_arguments] etc. load) but refuse what kohya
silently loses: tables nested two levels, the same key in two tables, unknown or misplaced keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, Problem, Report, Where
from .toml_source import Source, read_source
from .options import take_value
from .train_config import OPTIONS, resolve_aliases, table_key
from .unknown_keys import explain_args_key

_DATASET_TABLES = ("general", "datasets")


@dataclass
class ArgsFile:
    path: Path
    values: dict[str, Any] = field(default_factory=dict)  # option name -> converted value
    where: dict[str, Where] = field(default_factory=dict)  # option name -> file:line
    report: Report = field(default_factory=Report)


def args_file_path(given: str) -> Path:
    """kohya appends `.toml` when the name lacks it."""
    return Path(given if given.endswith(".toml") else given + ".toml")


@dataclass(frozen=True)
class _Entry:
    key: str
    value: Any
    table: str | None
    where: Where

    @property
    def place(self) -> str:
        return f"in [{self.table}]" if self.table else "at the top level"


def read_args_file(given: str) -> ArgsFile:
    """Parse, flatten and convert an args file. Problems are collected in `.report`, not raised."""
    if given.lower().endswith(".json"):
        raise ConfigError([Problem(Where(given), "--config_file takes a TOML args file. A .json is usually the "
                                                 "kohya_ss GUI's own settings file, which sd-scripts cannot read "
                                                 "either: use the config_*.toml the GUI writes into the output "
                                                 "folder (or pass a dataset config with --dataset_config)")])
    source = read_source(args_file_path(given), "--config_file")
    result = ArgsFile(source.path)
    seen: dict[str, _Entry] = {}
    for entry in _flatten(source, result.report):
        if entry.key in seen:
            first = seen[entry.key]
            result.report.problem(entry.where, f"key `{entry.key}` is set twice: {first.place} (line "
                                               f"{first.where.line}) and {entry.place}; kohya silently uses the last "
                                               "one. Keep one.", entry.key)
            continue
        seen[entry.key] = entry
        _take(entry, result)
    resolve_aliases(result.values, result.where, result.report)
    return result


def _take(entry: _Entry, result: ArgsFile) -> None:
    report, option = result.report, OPTIONS.get(entry.key)
    if option is None:
        verdict = explain_args_key(entry.key, entry.place, entry.value)
        if verdict.ignore_with_note:
            report.note(entry.where, verdict.message)
        else:
            report.problem(entry.where, verdict.message, entry.key)
    elif option.cli_only:
        report.note(entry.where, f"`{entry.key}` has no effect inside a config file: ignored.")
    elif take_value(result.values, option, entry.value, f"key `{entry.key}`", entry.where, report):
        result.where[entry.key] = entry.where


def _flatten(source: Source, report: Report) -> Iterator[_Entry]:
    """kohya's one-level flattening, reporting what it would silently drop."""
    if any(name in source.data for name in _DATASET_TABLES):
        name = next(n for n in _DATASET_TABLES if n in source.data)
        report.problem(source.where(name), f"`{name}` belongs to a dataset config ([general], [[datasets]], "
                                           "[[datasets.subsets]]): pass this file with --dataset_config, not "
                                           "--config_file.", name)
        return
    for name, value in source.data.items():
        if _is_table_array(value):
            report.problem(source.where(name), f"[[{name}]] (an array of tables) has no meaning in an args file; "
                                               "write option = value lines, optionally under [section] headers.",
                           name)
        elif isinstance(value, dict):
            for key, inner in value.items():
                if isinstance(inner, dict) or _is_table_array(inner):
                    report.problem(source.where(name, key), f"table [{name}.{key}] is nested two levels deep: "
                                                            f"kohya reads one level only and would silently drop "
                                                            f"its settings. Move them into [{name}].", key)
                else:
                    yield _Entry(table_key(name, key), inner, name, source.where(name, key))
        else:
            yield _Entry(name, value, None, source.where(name))


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
