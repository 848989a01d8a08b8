"""The command line, generated from the option table, and `load_train_config`: CLI > args file > defaults.

Every option is a flag; true/false options get `--x` / `--no-x`, so the command line can turn off what a
config file turned on (kohya's store_true flags cannot). Defaults are suppressed in argparse, so only the
flags actually given override the file. Values from the command line go through the same converters as
file values.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .args_file import read_args_file
from .checks import check_datasets, check_train_config
from .dataset_config import load_dataset_config
from .dataset_spec import DATASET_KEYS, DatasetConfig
from .errors import CLI, ConfigError, Problem, Report, Where
from .folder_mode import folder_mode_datasets
from .suggest import did_you_mean, normalize
from .options import Option
from .train_config import OPTIONS, TrainConfig, resolve_aliases
from .unknown_keys import LORA_KEYS, RENAMED, explain_args_key
from .values import BadValue, show


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
    return "KEY=VALUE" if opt.is_list else opt.name.rsplit("_", 1)[-1].upper()


def load_train_config(argv: list[str] | None = None) -> LoadedConfig:
    """Parse `argv` (default: sys.argv), read --config_file and the dataset config.

    Raises ConfigError listing every problem; returns typed values, the datasets and notes to print."""
    namespace, extras = build_parser().parse_known_args(argv)
    report = Report()
    _unknown_arguments(extras, report)
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
    """Command-line strings through the option converters (their notes are for file quirks, so dropped)."""
    values, where = {}, {}
    for name, value in raw.items():
        try:
            values[name], _ = OPTIONS[name].parse(value)
            where[name] = CLI
        except BadValue as e:
            report.problem(CLI, f"--{name}: {e}", name)
    aliases = Report()
    resolve_aliases(values, where, aliases)
    report.problems += aliases.problems  # its notes explain file quirks; a flag needs none
    return values, where


def _unknown_arguments(extras: list[str], report: Report) -> None:
    for token in extras:
        if not token.startswith("-"):
            report.problem(CLI, f"unexpected value `{token}`: true/false options take no value (write --flag or "
                                "--no-flag); other options take theirs after a space or `=`")
            continue
        name = normalize(token.split("=", 1)[0])
        if name in LORA_KEYS or name in DATASET_KEYS:
            report.problem(CLI, explain_args_key(name, "").message, name)
            continue
        guess = RENAMED.get(name) or did_you_mean(name, [n for n, o in OPTIONS.items() if not o.replaced_by])
        report.problem(CLI, f"unknown option `{token.split('=', 1)[0]}`" + (f". Did you mean `--{guess}`?"
                                                                             if guess else " (see --help)"), name)


def _datasets(train: TrainConfig, where: dict[str, Where], report: Report) -> DatasetConfig | None:
    args = train.dataset
    if args.dataset_config is None:
        if args.train_data_dir or args.reg_data_dir or args.in_json:
            return folder_mode_datasets(train, where, report)
        return None
    for name in ("train_data_dir", "reg_data_dir", "in_json"):
        if getattr(args, name) is not None:
            report.note(where[name], f"`{name}` is ignored because `dataset_config` is given")
    path = _dataset_path(args.dataset_config, where["dataset_config"], report)
    if not path.is_file():
        report.problem(where["dataset_config"], f"key `dataset_config`: file not found: {path}", "dataset_config")
        return None
    datasets, notes = load_dataset_config(path, train)
    report.notes += notes
    return datasets


def _dataset_path(given: str, at: Where, report: Report) -> Path:
    """Relative to the working directory (as kohya); else next to the args file that names it."""
    path = Path(given)
    beside = Path(at.file).parent / path
    if not path.is_absolute() and not path.exists() and at.line is not None and beside.exists():
        report.note(at, f"`dataset_config` {show(given)} read from next to the args file: {beside}")
        return beside
    return path
