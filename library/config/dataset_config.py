"""Load a kohya dataset config (`--dataset_config`): [general], [[datasets]], [[datasets.subsets]].

Same schema as sd-scripts' config_util (strict types, fixed levels), with two differences that matter to
users: every problem of the file is reported at once with its line, and each message says where a key
belongs instead of "extra keys not allowed @ data['datasets'][0]". A dataset is fine-tuning when all its
subsets have `metadata_file`, DreamBooth when none has; values fall back subset -> dataset -> [general] ->
args value -> default (see `dataset_spec.build_dataset`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .dataset_spec import (DATASET, DATASET_KEYS, DREAMBOOTH, FINE_TUNING, GENERAL, SUBSET, DatasetConfig,
                           build_dataset)
from .errors import ConfigError, Problem, Report, Where
from .toml_source import Source, read_source
from .train_config import OPTIONS, TrainConfig
from .unknown_keys import explain_dataset_key
from .values import BadValue

_TOP = "[general] and [[datasets]] (each with [[datasets.subsets]])"


def load_dataset_config(path: Path, train: TrainConfig) -> tuple[DatasetConfig, list[str]]:
    """Validate and resolve a dataset config against the args values; raises ConfigError with every problem."""
    if path.suffix.lower() not in (".toml", ".json"):
        raise ConfigError([Problem(Where(str(path)), "a dataset config must be a .toml or .json file")])
    source = read_source(path, "--dataset_config")
    report = Report()
    general = _table(source, source.data.get("general", {}), GENERAL, ("general",), report)
    datasets = []
    for index, raw in enumerate(_datasets(source, report)):
        here = ("datasets", index)
        subsets_raw = _subsets(source, raw, here, report)
        dataset = _table(source, {k: v for k, v in raw.items() if k != "subsets"}, DATASET, here, report)
        subsets = [_table(source, sub, SUBSET, (*here, "subsets", j), report) for j, sub in enumerate(subsets_raw)]
        kind = _kind(source, raw, subsets_raw, here, report)
        if kind is None:
            continue
        origins = [source.where(*here, "subsets", j) for j in range(len(subsets))]
        datasets.append(build_dataset(kind, [dataset, general], subsets, train, origins, source.where(*here)))
    report.raise_if_any()
    return DatasetConfig(tuple(datasets), str(path)), report.notes


def _datasets(source: Source, report: Report) -> list[dict[str, Any]]:
    """Check the top level; return the [[datasets]] entries."""
    for name, value in source.data.items():
        at = source.where(name)
        if name == "general":
            if not isinstance(value, dict):
                report.problem(at, "`general` must be a table: write [general] on its own line, keys below it",
                               name)
        elif name == "datasets":
            if isinstance(value, dict):
                report.problem(at, "write [[datasets]] with double brackets: each dataset is one entry of an "
                                   "array of tables, and its folders are [[datasets.subsets]] entries", name)
        elif isinstance(value, dict):
            args_like = sum(k in OPTIONS for k in value) > len(value) / 2
            hint = (" This looks like an args file: pass it with --config_file." if args_like else "")
            report.problem(at, f"unknown table [{name}]: a dataset config holds only {_TOP}.{hint}", name)
        elif name in DATASET_KEYS:
            report.problem(at, f"key `{name}` at the top level: put it under [general] (or a [[datasets]] entry)",
                           name)
        else:
            report.problem(at, explain_dataset_key(name, "at the top level").message, name)
    datasets = source.data.get("datasets")
    if not datasets:
        report.problem(source.where(), f"no [[datasets]]: a dataset config needs {_TOP}")
    if not isinstance(datasets, list):
        return []
    if not all(isinstance(d, dict) for d in datasets):
        report.problem(source.where("datasets"), "`datasets` must be [[datasets]] tables", "datasets")
        return []
    return datasets


def _subsets(source: Source, dataset: dict[str, Any], path: tuple, report: Report) -> list[dict[str, Any]]:
    subsets = dataset.get("subsets")
    if isinstance(subsets, list) and subsets and all(isinstance(s, dict) for s in subsets):
        return subsets
    if isinstance(subsets, dict):
        report.problem(source.where(*path, "subsets"), "write [[datasets.subsets]] with double brackets: each "
                                                      "subset is one entry of an array of tables", "subsets")
    elif subsets is None or subsets == []:
        report.problem(source.where(*path), "this [[datasets]] entry has no [[datasets.subsets]]: add one per "
                                            "image folder (image_dir = ...)")
    else:
        report.problem(source.where(*path, "subsets"), "`subsets` must be [[datasets.subsets]] tables", "subsets")
    return []


def _table(source: Source, table: Any, level: str, path: tuple, report: Report) -> dict[str, Any]:
    """Check and convert the keys of one table at one level."""
    if not isinstance(table, dict):
        return {}
    values = {}
    for name, raw in table.items():
        at = source.where(*path, name)
        spec = DATASET_KEYS.get(name)
        if spec is None:
            report.problem(at, explain_dataset_key(name, f"in {level}").message, name)
        elif level not in spec.levels:
            report.problem(at, f"key `{name}` is not allowed in {level}: it belongs in "
                               f"{' or '.join(spec.levels)}", name)
        else:
            try:
                values[name], note = spec.parse(raw)
            except BadValue as e:
                report.problem(at, f"key `{name}`: {e}", name)
                continue
            if note:
                report.note(at, f"key `{name}`: {note}")
    return values


def _kind(source: Source, dataset: dict[str, Any], subsets: list[dict[str, Any]], path: tuple,
          report: Report) -> str | None:
    """DreamBooth or fine-tuning, from the subsets; checks the keys that only one kind has."""
    if not subsets:
        return None
    with_metadata = ["metadata_file" in s for s in subsets]
    if any(with_metadata) and not all(with_metadata):
        report.problem(source.where(*path), "this dataset mixes fine-tuning subsets (with metadata_file) and "
                                            "DreamBooth subsets (image folders, no metadata_file): split them "
                                            "into separate [[datasets]] entries")
        return None
    kind = FINE_TUNING if all(with_metadata) else DREAMBOOTH
    tables = [(dataset, path)] + [(s, (*path, "subsets", j)) for j, s in enumerate(subsets)]
    for table, table_path in tables:
        for name in table:
            spec = DATASET_KEYS.get(name)
            if spec and kind not in spec.kinds:
                report.problem(source.where(*table_path, name),
                               f"key `{name}` is for DreamBooth subsets; this dataset is fine-tuning (its subsets "
                               "have metadata_file, which holds the captions)", name)
    if kind == DREAMBOOTH:
        for j, subset in enumerate(subsets):
            if "image_dir" not in subset:
                report.problem(source.where(*path, "subsets", j), "this subset has no `image_dir` (the folder of "
                                                                  "its images; required for DreamBooth subsets)")
    return kind
