"""The dataset config as typed dataclasses: `DatasetConfig` -> `DatasetSpec`s -> `SubsetSpec`s.

The fields are also the dataset-config key table (`DATASET_KEYS`): each field says at which levels it may be
written ([general], [[datasets]], [[datasets.subsets]]) and for which kind of dataset. Keys that are also
args options (keep_tokens, resolution, ...) take their help, choices and bounds from `OPTIONS`, so the two
files cannot drift apart. Types follow kohya's schema strictly (no strings for numbers).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import Where
from .options import Option, type_converter
from .train_config import OPTIONS, TrainConfig
from .values import Converter, to_path, to_table

GENERAL, DATASET, SUBSET = "[general]", "[[datasets]]", "[[datasets.subsets]]"
ALL_LEVELS, ABOVE_SUBSET, SUBSET_ONLY = (GENERAL, DATASET, SUBSET), (GENERAL, DATASET), (SUBSET,)
DREAMBOOTH, FINE_TUNING = "dreambooth", "fine_tuning"

# kohya's args name for a dataset key, where they differ (the args value is the last fallback).
ARGS_NAME = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}


def key(default: Any, help: str = "", *, levels: tuple[str, ...] = ALL_LEVELS,
        kinds: tuple[str, ...] = (DREAMBOOTH, FINE_TUNING), conv: Converter | None = None,
        low: float | None = None, high: float | None = None) -> Any:
    """Declare a dataset-config key; help, converter, choices and bounds default to the args option's."""
    return field(default=default, metadata=dict(levels=levels, kinds=kinds, help=help, conv=conv, low=low, high=high))


@dataclass(frozen=True)
class SubsetSpec:
    """One folder of images (DreamBooth) or one metadata file (fine-tuning), with every value resolved."""

    image_dir: str | None = key(None, "folder of images", levels=SUBSET_ONLY, conv=to_path)
    metadata_file: str | None = key(None, "metadata JSON of a fine-tuning subset", levels=SUBSET_ONLY,
                                    kinds=(FINE_TUNING,), conv=to_path)
    is_reg: bool = key(False, "regularization (prior) images", levels=SUBSET_ONLY, kinds=(DREAMBOOTH,))
    alpha_mask: bool = key(False, levels=SUBSET_ONLY)
    conditioning_data_dir: str | None = key(None, levels=SUBSET_ONLY, kinds=(DREAMBOOTH,))
    class_tokens: str | None = key(None, "caption for images without a caption file", kinds=(DREAMBOOTH,))
    caption_extension: str = key(".caption", kinds=(DREAMBOOTH,))
    cache_info: bool = key(False, kinds=(DREAMBOOTH,))
    num_repeats: int = key(1, "how often each image is used per epoch (0: the subset is skipped, as in kohya)",
                           low=0)
    shuffle_caption: bool = key(False)
    caption_separator: str = key(",")
    keep_tokens: int = key(0)
    keep_tokens_separator: str = key("")
    secondary_separator: str | None = key(None)
    enable_wildcard: bool = key(False)
    caption_prefix: str | None = key(None)
    caption_suffix: str | None = key(None)
    caption_dropout_rate: float = key(0.0)
    caption_dropout_every_n_epochs: int = key(0)
    caption_tag_dropout_rate: float = key(0.0)
    token_warmup_min: int = key(1)
    token_warmup_step: float = key(0.0)
    color_aug: bool = key(False)
    flip_aug: bool = key(False)
    random_crop: bool = key(False)
    face_crop_aug_range: tuple[float, float] | None = key(None, "face-centred crop scale range [2.0, 4.0]")
    resize_interpolation: str | None = key(None)
    custom_attributes: dict[str, Any] | None = key(None, "free-form table handed to the dataset", conv=to_table)
    origin: Where | None = field(default=None, compare=False)  # where it was written, for later messages


@dataclass(frozen=True)
class DatasetSpec:
    """A group of subsets sharing batch size and buckets; `kind` is dreambooth or fine_tuning."""

    kind: str
    subsets: tuple[SubsetSpec, ...]
    resolution: tuple[int, int] | None = key(None, "training size: 512 or [width, height]", levels=ABOVE_SUBSET)
    batch_size: int = key(1, "batch size of this dataset", levels=ABOVE_SUBSET, low=1)
    enable_bucket: bool = key(False, levels=ABOVE_SUBSET)
    min_bucket_reso: int = key(256, levels=ABOVE_SUBSET)
    max_bucket_reso: int = key(1024, levels=ABOVE_SUBSET)
    bucket_reso_steps: int = key(64, levels=ABOVE_SUBSET)
    bucket_no_upscale: bool = key(False, levels=ABOVE_SUBSET)
    validation_split: float = key(0.0, "fraction of images held out for validation", levels=ABOVE_SUBSET, low=0,
                                  high=1)
    validation_seed: int | None = key(None, "seed of the validation split", levels=ABOVE_SUBSET)
    validation_dir: str | None = key(None, "folder of validation images, captioned as the first subset's (with or "
                                           "instead of validation_split)", levels=ABOVE_SUBSET, kinds=(DREAMBOOTH,),
                                     conv=to_path)
    origin: Where | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DatasetConfig:
    datasets: tuple[DatasetSpec, ...]
    source: str  # the dataset config file, or "folder mode"

    @property
    def subsets(self) -> tuple[SubsetSpec, ...]:
        return tuple(s for d in self.datasets for s in d.subsets)


@dataclass(frozen=True)
class DatasetKey:
    """One dataset-config key: where it may be written and how its value is checked."""

    name: str
    levels: tuple[str, ...]
    kinds: tuple[str, ...]
    option: Option  # help, converter, choices and bounds (parsed in strict mode: kohya's schema)


def _keys_of(cls: type) -> dict[str, DatasetKey]:
    hints = typing.get_type_hints(cls)
    table = {}
    for f in dataclasses.fields(cls):
        if "levels" not in f.metadata:
            continue
        meta = f.metadata
        shared = OPTIONS.get(ARGS_NAME.get(f.name, f.name))
        conv = meta["conv"] or (shared.convert if shared else type_converter(hints[f.name]))
        opt = Option(name=f.name, section="", default=f.default, convert=conv,
                     help=meta["help"] or (shared.help if shared else ""),
                     choices=shared.choices if shared else (), hints=shared.hints if shared else {},
                     low=meta["low"] if meta["low"] is not None or not shared else shared.low,
                     high=meta["high"] if meta["high"] is not None or not shared else shared.high)
        table[f.name] = DatasetKey(f.name, meta["levels"], meta["kinds"], opt)
    return table


DATASET_KEYS: dict[str, DatasetKey] = {**_keys_of(DatasetSpec), **_keys_of(SubsetSpec)}


def _resolve(name: str, tables: list[dict[str, Any]], train: TrainConfig, default: Any) -> Any:
    """kohya's fallback chain: the tables in order (subset, dataset, [general]), the args value, the default."""
    for table in tables:
        if name in table:
            return table[name]
    args_name = ARGS_NAME.get(name, name)
    value = train.get(args_name) if args_name in OPTIONS else None
    return default if value is None else value


def _resolved(cls: type, kind: str, tables: list[dict[str, Any]], train: TrainConfig) -> dict[str, Any]:
    """Every key of `cls` that applies to this kind of dataset; the others keep their defaults."""
    return {f.name: _resolve(f.name, tables, train, f.default) for f in dataclasses.fields(cls)
            if f.name in DATASET_KEYS and kind in DATASET_KEYS[f.name].kinds}


def build_dataset(kind: str, tables: list[dict[str, Any]], subset_tables: list[dict[str, Any]],
                  train: TrainConfig, origins: list[Where | None], origin: Where | None) -> DatasetSpec:
    """A dataset with every value resolved. `tables` = [dataset, general]; one subset table per subset."""
    subsets = tuple(SubsetSpec(**_resolved(SubsetSpec, kind, [sub, *tables], train), origin=at)
                    for sub, at in zip(subset_tables, origins))
    return DatasetSpec(kind, subsets, **_resolved(DatasetSpec, kind, tables, train), origin=origin)
