"""What an option is, and how the option table is read off the typed dataclasses.

Every args-file option is a field of a section dataclass in `train_config.py`, declared with `option(...)`.
The field gives name, type and default; `option` adds help, choices and bounds. `option_table` turns those
fields into `Option` records, so the dataclasses are the one list of names, types and defaults: the file
loader, the generated CLI and the did-you-mean suggestions all read this table.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import Report, Where
from .values import (BadValue, Converted, Converter, check_bounds, check_choice, to_bool, to_float, to_int,
                     to_str)

_BY_TYPE: dict[type, Converter] = {bool: to_bool, int: to_int, float: to_float, str: to_str}


@dataclass(frozen=True)
class Option:
    """One args-file key / command-line flag."""

    name: str
    section: str  # kohya-style table name, e.g. "optimizer_arguments" (advice only: kohya ignores table names)
    help: str
    default: Any
    convert: Converter
    choices: tuple = ()
    hints: dict[str, str] = field(default_factory=dict)  # common wrong choice -> the right one
    low: float | None = None
    high: float | None = None
    is_flag: bool = False  # true/false: `--x` / `--no-x` on the command line
    is_list: bool = False  # several values after one flag on the command line
    cli_only: bool = False  # has no effect inside a config file
    attr: tuple[str, str] | None = None  # where it lives in TrainConfig: (section attribute, field)
    replaced_by: str | None = None  # old alias: the value goes to this option instead
    replaced_value: Any = None  # old flag alias: when true, `replaced_by` takes this value

    def parse(self, raw: Any, lenient: bool = True) -> Converted:
        """Convert and check one raw value; raises BadValue with what was expected."""
        value, note = self.convert(raw, lenient)
        if self.choices:
            check_choice(value, self.choices, self.hints)
        check_bounds(value, self.low, self.high)
        return value, note


def take_value(values: dict[str, Any], option: Option, raw: Any, label: str, at: Where, report: Report,
               lenient: bool = True) -> bool:
    """Parse `raw` into `values[option.name]`: a bad value is a problem at `at`, a quirk read leniently a note,
    both starting with `label` (how the user wrote the name). False when the value was refused."""
    try:
        value, note = option.parse(raw, lenient)
    except BadValue as e:
        report.problem(at, f"{label}: {e}", option.name)
        return False
    if note:
        report.note(at, f"{label}: {note}")
    values[option.name] = value
    return True


def option(default: Any, help: str, *, conv: Converter | None = None, choices: tuple = (),
           hints: dict[str, str] | None = None, low: float | None = None, high: float | None = None,
           is_list: bool = False, cli_only: bool = False) -> Any:
    """Declare a dataclass field as an option. Mutable defaults (dicts) become default factories."""
    spec = dict(help=help, conv=conv, choices=choices, hints=hints or {}, low=low, high=high, is_list=is_list,
                cli_only=cli_only)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


def _base_type(hint: Any) -> Any:
    """`int | None` -> int; other unions and generics are returned unchanged."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def type_converter(hint: Any) -> Converter:
    """The plain converter for a field's annotation (bool, int, float, str, optionally `| None`)."""
    conv = _BY_TYPE.get(_base_type(hint))
    if conv is None:
        raise TypeError(f"no plain converter for {hint}; pass conv=")
    return conv


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def section_options(section_cls: type, section: str, attr: str) -> list[Option]:
    hints = typing.get_type_hints(section_cls)
    options = []
    for f in dataclasses.fields(section_cls):
        spec = dict(f.metadata["option"])
        conv = spec.pop("conv") or type_converter(hints[f.name])
        options.append(Option(name=f.name, section=section, default=default_of(f), convert=conv,
                              is_flag=_base_type(hints[f.name]) is bool, attr=(attr, f.name), **spec))
    return options


def option_table(config_cls: type, aliases: list[Option]) -> dict[str, Option]:
    """All options of a config made of section dataclasses (attribute `x` = table `[x_arguments]`, unless the
    field names its table in metadata)."""
    hints = typing.get_type_hints(config_cls)
    table: dict[str, Option] = {}
    for f in dataclasses.fields(config_cls):
        for opt in section_options(hints[f.name], f.metadata.get("table", f"{f.name}_arguments"), f.name):
            if opt.name in table:
                raise TypeError(f"option {opt.name} is declared twice")
            table[opt.name] = opt
    table.update({a.name: a for a in aliases})
    return table

