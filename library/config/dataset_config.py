"""Load a kohya dataset config (`--dataset_config`): [general], [[datasets]], [[datasets.subsets]].

Same schema as sd-scripts' config_util (strict types, fixed levels), with two differences that matter to
users: every problem of the file is reported at once with its line, and each message says where a key
belongs instead of "extra keys not allowed @ data['datasets'][0]". A dataset is fine-tuning when all its
subsets have `metadata_file`, DreamBooth when none has; values fall back subset -> dataset -> [general] ->
args value -> default (see `dataset_spec.build_dataset`).

Like kohya, a subset with `num_repeats = 0` is skipped (with a note). Each `image_dir` and `metadata_file` must
exist (relative: from the working directory, else next to the dataset config). An args file given here by
mistake is told apart by its keys and reported as one problem instead of one per key.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .dataset_spec import (DATASET, DATASET_KEYS, DREAMBOOTH, FINE_TUNING, GENERAL, SUBSET, DatasetConfig,
                           DatasetSpec, SubsetSpec, build_dataset)
from .errors import ConfigError, Problem, Report, Where
from .options import take_value
from .paths import checked_path
from .toml_source import Source, read_source
from .train_config import OPTIONS, TrainConfig
from .unknown_keys import GUI_IGNORED, LORA_KEYS, explain_dataset_key
from .values import show

_TOP = "[general] and [[datasets]] (each with [[datasets.subsets]])"
_DETAILS = 3  # problems shown under "this looks like an args file"


def load_dataset_config(path: Path, train: TrainConfig) -> tuple[DatasetConfig, Report]:
    """Validate and resolve a dataset config against the args values.

    Raises ConfigError with every problem when the file does not read as a dataset config. Problems that leave it
    readable (a missing image folder) come back in the report, with the notes, to be raised together with the
    checks that follow (a dataset without resolution)."""
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
        datasets.append((build_dataset(kind, [dataset, general], subsets, train, origins, source.where(*here)), here))
    report.problems = _as_args_file(source, report.problems)
    report.raise_if_any()
    used = tuple(_used_subsets(source, built, here, report) for built, here in datasets)
    return DatasetConfig(used, str(path)), report


def _used_subsets(source: Source, dataset: DatasetSpec, path: tuple, report: Report) -> DatasetSpec:
    """Drop the subsets with num_repeats = 0 (kohya skips them too); check the paths of the others."""
    kept = []
    for j, subset in enumerate(dataset.subsets):
        if subset.num_repeats == 0:
            report.note(subset.origin, f"subset {show(subset.image_dir or subset.metadata_file)} has num_repeats "
                                       "= 0: skipped, as kohya does")
        else:
            kept.append(_subset_paths(source, subset, (*path, "subsets", j), report))
    if dataset.subsets and not kept:
        report.problem(dataset.origin, "every subset of this dataset has num_repeats = 0, so it has no images: "
                                       "set num_repeats = 1 or more in one, or remove this [[datasets]] entry",
                       "num_repeats")
    return replace(dataset, subsets=tuple(kept))


def _subset_paths(source: Source, subset: SubsetSpec, path: tuple, report: Report) -> SubsetSpec:
    """`image_dir` must be a folder, `metadata_file` a file; a path found next to the config replaces the given one."""
    found = {}
    for name, folder in (("image_dir", True), ("metadata_file", False)):
        given = getattr(subset, name)
        if given is not None:
            found[name] = checked_path(given, name, source.where(*path, name), folder, "the dataset config",
                                       report) or given
    return replace(subset, **found)


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
            take_value(values, spec.option, raw, f"key `{name}`", at, report, lenient=False)
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


def _as_args_file(source: Source, problems: list[Problem]) -> list[Problem]:
    """An args file given as --dataset_config: one problem naming the mistake, with the first few details."""
    if not problems or "general" in source.data or "datasets" in source.data:
        return problems
    keys = _args_keys(source)
    args_like = [(k, at) for k, at in keys if k in OPTIONS or k in LORA_KEYS or k in GUI_IGNORED]
    args_only = [(k, at) for k, at in args_like if k not in DATASET_KEYS]
    if not args_only or len(args_like) <= len(keys) / 2:
        return problems
    named = ", ".join(f"`{k}`" for k, _ in args_only[:3]) + (", ..." if len(args_only) > 3 else "")
    details = "".join(f"\n    {p}" for p in problems[:_DETAILS])
    more = f"\n    ... and {len(problems) - _DETAILS} more" if len(problems) > _DETAILS else ""
    return [Problem(args_only[0][1], f"this looks like an args file (it sets {named}), not a dataset config: pass "
                                     f"it with --config_file. Read as a dataset config it has {len(problems)} "
                                     f"problems:{details}{more}")]


def _args_keys(source: Source) -> list[tuple[str, Where]]:
    """The keys at the top and one table down, where an args file keeps them."""
    found = []
    for name, value in source.data.items():
        if isinstance(value, dict):
            found += [(key, source.where(name, key)) for key in value]
        else:
            found.append((name, source.where(name)))
    return found
