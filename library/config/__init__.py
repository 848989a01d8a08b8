"""Training config: kohya-style args TOML (--config_file), dataset config (--dataset_config) and CLI flags.

`load_train_config(argv)` is the entry point: it returns typed, validated dataclasses or raises
`ConfigError` (a `UserError`) listing every problem as `FILE:LINE: message`. No heavy imports here:
validating a config must be instant.
"""

from .args_writer import dump_args_toml, dump_dataset_toml, write_args_file
from .cli import LoadedConfig, build_parser, load_train_config
from .dataset_spec import DatasetConfig, DatasetSpec, SubsetSpec
from .errors import ConfigError, Problem
from .folder_mode import parse_folder_name
from .train_config import OPTIONS, TrainConfig

__all__ = [
    "ConfigError", "DatasetConfig", "DatasetSpec", "LoadedConfig", "OPTIONS", "Problem", "SubsetSpec",
    "TrainConfig", "build_parser", "dump_args_toml", "dump_dataset_toml", "load_train_config", "parse_folder_name",
    "write_args_file",
]
