"""Write a TrainConfig back as an args file (kohya's `--output_config`): the options that differ from defaults.

Values are written in kohya's own forms ("768,512" for sizes, "key=value" lists for optimizer arguments),
grouped under the usual section tables, so the file loads here and in sd-scripts alike.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from .args_file import args_file_path
from .dataset_spec import DatasetConfig, DatasetSpec, SubsetSpec
from .errors import ConfigError, Problem, Where
from .train_config import OPTIONS, TrainConfig
from .values import show, to_float_pair, to_kwargs, to_resolution

# kohya leaves these out: the first two steer the run itself, the key is a secret.
_LEFT_OUT = ("config_file", "output_config", "wandb_api_key")


def dump_args_toml(train: TrainConfig) -> str:
    defaults = TrainConfig().to_flat()
    sections: dict[str, list[str]] = {}
    for name, value in train.to_flat().items():
        if name not in _LEFT_OUT and value != defaults[name]:
            sections.setdefault(OPTIONS[name].section, []).append(f"{name} = {show(_kohya_form(name, value))}")
    return "\n\n".join(f"[{section}]\n" + "\n".join(lines) for section, lines in sections.items()) + "\n"


def _kohya_form(name: str, value: Any) -> Any:
    convert = OPTIONS[name].convert
    if convert in (to_resolution, to_float_pair):
        return ",".join(str(v) for v in value)
    if convert is to_kwargs:
        return [f"{key}={item!r}" for key, item in value.items()]
    return value


def write_args_file(train: TrainConfig, given: str | Path) -> Path:
    """Write the args file (`.toml` appended as kohya does); never overwrites an existing file."""
    path = args_file_path(str(given))
    if path.exists():
        raise ConfigError([Problem(Where(str(path)), "already exists: --output_config does not overwrite a file; "
                                                     "remove it or name another --config_file")])
    atomic_write_text(path, dump_args_toml(train))
    return path


def dump_dataset_toml(config: DatasetConfig) -> str:
    """A dataset config as a TOML file kohya reads: each dataset's and subset's resolved keys that differ from the
    defaults (workflows write the datasets they make this way, so the file shows what was trained)."""
    blocks = []
    for dataset in config.datasets:
        lines = ["[[datasets]]", *_changed(dataset, DatasetSpec(kind=dataset.kind, subsets=()))]
        for subset in dataset.subsets:
            lines += ["", "  [[datasets.subsets]]", *("  " + line for line in _changed(subset, SubsetSpec()))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _changed(spec: Any, default: Any) -> list[str]:
    return [f"{f.name} = {show(getattr(spec, f.name))}" for f in fields(spec)
            if "levels" in f.metadata and getattr(spec, f.name) != getattr(default, f.name)]
