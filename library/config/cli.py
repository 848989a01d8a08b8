"""The command line, generated from the option table, and `load_train_config`: CLI > args file > defaults.

Every option is a flag; true/false options get `--x` / `--no-x`, so the command line can turn off what a
config file turned on (kohya's store_true flags cannot). Defaults are suppressed in argparse, so only the
flags actually given override the file. Values from the command line go through the same converters as
file values. An unknown flag is taken out before argparse sees it, together with the values after it, so
`--learnig_rate 1e-6` is one problem (the misspelling), not also a stray `1e-6`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .args_file import read_args_file
from .checks import check_datasets, check_train_config
from .dataset_config import load_dataset_config
from .dataset_spec import DatasetConfig
from .errors import CLI, ConfigError, Problem, Report, Where
from .folder_mode import folder_mode_datasets
from .options import Option, take_value
from .paths import checked_path
from .suggest import normalize
from .train_config import OPTIONS, TrainConfig, resolve_aliases
from .unknown_keys import explain_flag
from .values import show, to_kwargs


@dataclass(frozen=True)
class LoadedConfig:
    train: TrainConfig
    datasets: DatasetConfig | None  # None when neither dataset_config nor train_data_dir/in_json is given
    notes: list[str] = field(default_factory=list)  # one line each, for the user


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2)
        raise ConfigError([Problem(CLI, f"{message} (see --help)")])


def build_parser(prog: str = "train_certain.py") -> argparse.ArgumentParser:
    """One flag per option, grouped by kohya section; nothing has a default, so only given flags appear."""
    parser = _Parser(prog=prog, usage="%(prog)s [--config_file FILE] [--dataset_config FILE] [options]",
                     allow_abbrev=False, argument_default=argparse.SUPPRESS,
                     description="Fine-tune Stable Diffusion 1.x/2.x. Takes sd-scripts' train_db.py / fine_tune.py "
                                 "options; --config_file reads them from a TOML (command-line flags win).")
    groups: dict[str, Any] = {}
    for opt in OPTIONS.values():
        if opt.section not in groups:
            groups[opt.section] = parser.add_argument_group(f"[{opt.section}]")
        if opt.is_flag:
            groups[opt.section].add_argument(f"--{opt.name}", action=argparse.BooleanOptionalAction, help=_help(opt))
        else:
            groups[opt.section].add_argument(f"--{opt.name}", nargs="*" if opt.is_list else None,
                                             metavar=_metavar(opt), help=_help(opt))
    return parser


def _help(opt: Option) -> str:
    shown = list(opt.default) if isinstance(opt.default, tuple) else opt.default
    return opt.help if shown in (None, "", {}, False) else f"{opt.help} (default: {show(shown)})"


def _metavar(opt: Option) -> str:
    if opt.choices:
        return "{" + ",".join(map(str, opt.choices)) + "}"
    if opt.is_list:
        return "KEY=VALUE" if opt.convert is to_kwargs else "WORD"
    return opt.name.rsplit("_", 1)[-1].upper()


def load_train_config(argv: list[str] | None = None) -> LoadedConfig:
    """Parse `argv` (default: sys.argv), read --config_file and the dataset config.

    Raises ConfigError listing every problem; returns typed values, the datasets and notes to print."""
    known, unknown = _split_unknown_flags(sys.argv[1:] if argv is None else list(argv))
    namespace, extras = build_parser().parse_known_args(known)
    report = Report()
    _unknown_arguments(unknown + extras, report)
    values, where = _convert_cli(vars(namespace), report)
    notes: list[str] = []
    config_file = values.get("config_file")
    if config_file and not values.get("output_config"):  # with --output_config the file is written, not read
        file = read_args_file(config_file)
        report.problems[:0] = file.report.problems
        notes += file.report.notes
        values, where = {**file.values, **values}, {**file.where, **where}
    report.raise_if_any()
    train = TrainConfig.from_flat(values)
    check_train_config(train, where, report)
    report.raise_if_any()
    datasets = _datasets(train, where, report)
    check_datasets(train, datasets, where, report)
    report.raise_if_any()
    return LoadedConfig(train, datasets, notes + report.notes)


def _convert_cli(raw: dict[str, Any], report: Report) -> tuple[dict[str, Any], dict[str, Where]]:
    """Command-line strings through the option converters, then the old names resolved. Their notes explain
    file quirks, which a flag does not have, so only the problems are kept."""
    values, where, found = {}, {}, Report()
    for name, value in raw.items():
        if take_value(values, OPTIONS[name], value, f"--{name}", CLI, found):
            where[name] = CLI
    resolve_aliases(values, where, found)
    report.problems += found.problems
    return values, where


def _is_flag(token: str) -> bool:
    """`--x` or `-x`, but not a negative number (a value) and not `--` (end of options)."""
    try:
        float(token)
        return False
    except ValueError:
        return token.startswith("-") and token != "--"


def _known_flag(token: str) -> bool:
    name = token.split("=", 1)[0]
    if name in ("-h", "--help"):
        return True
    if name.startswith("--no-") and name[5:] in OPTIONS:
        return OPTIONS[name[5:]].is_flag
    return name.startswith("--") and name[2:] in OPTIONS


def _split_unknown_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without unknown flags, the unknown flags); the values that follow an unknown flag are dropped with it."""
    known: list[str] = []
    unknown: list[str] = []
    swallowing = False  # after an unknown flag: its values
    for token in argv:
        if not _is_flag(token):
            if not swallowing:
                known.append(token)
            continue
        is_known = _known_flag(token)
        (known if is_known else unknown).append(token)
        swallowing = not is_known and "=" not in token
    return known, unknown


def _unknown_arguments(tokens: list[str], report: Report) -> None:
    """Unknown flags (their values already dropped), then values no option took."""
    for token in tokens:
        if _is_flag(token):
            report.problem(CLI, explain_flag(token).message, normalize(token.split("=", 1)[0]))
        else:
            report.problem(CLI, f"unexpected value `{token}`: true/false options take no value (write --flag or "
                                "--no-flag); other options take theirs after a space or `=`")


def _datasets(train: TrainConfig, where: dict[str, Where], report: Report) -> DatasetConfig | None:
    args = train.dataset
    if args.dataset_config is None:
        if args.train_data_dir or args.reg_data_dir or args.in_json:
            return folder_mode_datasets(train, where, report)
        return None
    for name in ("train_data_dir", "reg_data_dir", "in_json"):
        if getattr(args, name) is not None:
            report.note(where[name], f"`{name}` is ignored because `dataset_config` is given")
    # Relative to the working directory (as kohya); else next to the args file that names it.
    path = checked_path(args.dataset_config, "dataset_config", where["dataset_config"], folder=False,
                        named_in="the args file", report=report)
    if path is None:
        return None
    datasets, found = load_dataset_config(Path(path), train)
    report.problems += found.problems
    report.notes += found.notes
    return datasets
