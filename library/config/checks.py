"""Cross-checks between options: combinations sd-scripts rejects (or warns about) only after loading the model.

Each rule names the keys involved and points at the line of the first one, so the user fixes the config
before waiting minutes for a checkpoint to load.
"""

from __future__ import annotations

from typing import Any, Callable

from .dataset_spec import DatasetConfig
from .errors import CLI, Report, Where
from .train_config import TrainConfig
from .values import show

Get = Callable[[str], Any]

# (broken when, keys involved (the first is blamed), what to do)
RULES: list[tuple[Callable[[Get], bool], tuple[str, ...], str]] = [
    (lambda g: g("adaptive_noise_scale") is not None and g("noise_offset") is None,
     ("adaptive_noise_scale", "noise_offset"), "needs `noise_offset` as well, e.g. noise_offset = 0.05"),
    (lambda g: g("scale_v_pred_loss_like_noise_pred") and not g("v_parameterization"),
     ("scale_v_pred_loss_like_noise_pred", "v_parameterization"), "works only with `v_parameterization = true`"),
    (lambda g: g("v_pred_like_loss") and g("v_parameterization"),
     ("v_pred_like_loss", "v_parameterization"), "cannot be combined with `v_parameterization = true`"),
    (lambda g: g("full_fp16") and g("mixed_precision") != "fp16",
     ("full_fp16", "mixed_precision"), "needs `mixed_precision = \"fp16\"`"),
    (lambda g: g("full_bf16") and g("mixed_precision") != "bf16",
     ("full_bf16", "mixed_precision"), "needs `mixed_precision = \"bf16\"`"),
    (lambda g: g("min_timestep") is not None and g("min_timestep") >= (g("max_timestep") or 1000),
     ("min_timestep", "max_timestep"), "must be below `max_timestep` (default 1000)"),
    (lambda g: g("min_bucket_reso") > g("max_bucket_reso"),
     ("min_bucket_reso", "max_bucket_reso"), "must not exceed `max_bucket_reso`"),
    (lambda g: g("torch_compile") and g("dynamo_backend") == "no",
     ("dynamo_backend", "torch_compile"), "\"no\" names no backend, but `torch_compile` is on; use \"inductor\""),
    (lambda g: g("lr_warmup_steps") and g("lr_scheduler") in ("constant", "adafactor") and not g("lr_scheduler_type"),
     ("lr_warmup_steps", "lr_scheduler"), "has no effect with this `lr_scheduler` (kohya stops with \"does not "
                                          "require num_warmup_steps\"); use \"constant_with_warmup\" or set it to 0"),
    (lambda g: g("log_with") in ("tensorboard", "all") and g("logging_dir") is None,
     ("log_with", "logging_dir"), "TensorBoard logging needs `logging_dir`"),
    (lambda g: g("reg_mode") == "self_wordfreq" and not g("reg_word_list"),
     ("reg_mode", "reg_word_list"), "needs a word list: `reg_word_list` = a tag CSV, a `word count` file, a caption "
                                    "folder, or \"captions\" (the training captions)"),
    (lambda g: g("reg_mode") == "pregenerated_wordfreq" and not g("reg_images_dir"),
     ("reg_mode", "reg_images_dir"), "needs `reg_images_dir`: the folder gen_reg_images.py --wordfreq wrote"),
    (lambda g: g("reg_mode") == "prior" and not g("reg_data_dir") and not g("dataset_config"),
     ("reg_mode", "reg_data_dir"), "needs class images: `reg_data_dir` (the parent of `1_class` folders) or "
                                   "is_reg subsets in a dataset_config"),
    (lambda g: g("reg_mode") in ("self_wordfreq", "pregenerated_wordfreq") and g("reg_ratio") == 0
     and g("reg_batch") is None, ("reg_ratio", "reg_mode"), "is 0, so no regularization image would ever be "
                                                            "used; set it above 0 (0.25 = 1:4) or set reg_mode = "
                                                            "\"none\""),
    (lambda g: g("output_config") and not g("config_file"),
     ("output_config", "config_file"), "needs `--config_file` naming the file to write"),
]

# (questionable when, key, note) - kohya warns and goes on.
WARNINGS: list[tuple[Callable[[Get], bool], str, str]] = [
    (lambda g: g("v2") and g("clip_skip") is not None, "clip_skip", "clip_skip with v2 is unusual (kohya warns)"),
    (lambda g: g("zero_terminal_snr") and not g("v_parameterization"), "zero_terminal_snr",
     "zero_terminal_snr is meant for v_parameterization; results may be unexpected"),
    (lambda g: g("reg_mode") in ("self_wordfreq", "pregenerated_wordfreq") and g("reg_data_dir"), "reg_mode",
     "word-frequency regularization and the class images of reg_data_dir are both on; the Certain method "
     "replaces prior preservation, so usually only one is wanted"),
    (lambda g: g("reg_mode") == "none" and any(g(n) for n in ("reg_word_list", "reg_images_dir")), "reg_mode",
     "a regularization word list or folder is set, but reg_mode is \"none\": nothing is generated. Set reg_mode "
     "= \"self_wordfreq\" (or \"pregenerated_wordfreq\")"),
]


def _where(where: dict[str, Where], names: tuple[str, ...]) -> Where:
    return next((where[n] for n in names if n in where), CLI)


def check_train_config(train: TrainConfig, where: dict[str, Where], report: Report) -> None:
    """Report every broken rule; `where` maps option names to where they were set."""
    for broken, names, advice in RULES:
        if broken(train.get):
            values = ", ".join(f"{n} = {show(train.get(n))}" for n in names)
            report.problem(_where(where, names), f"key `{names[0]}` {advice} (now {values})", names[0])
    for questionable, name, message in WARNINGS:
        if questionable(train.get):
            report.note(_where(where, (name,)), message)


def check_datasets(train: TrainConfig, datasets: DatasetConfig | None, where: dict[str, Where],
                   report: Report) -> None:
    """Checks that need the resolved datasets (values may come from subsets, [general] or the args)."""
    caching = next((n for n in ("cache_latents", "cache_latents_to_disk") if train.get(n)), None)
    if datasets is None:
        augment = [n for n in ("color_aug", "random_crop") if train.get(n)]
        if caching and augment:
            report.problem(_where(where, (caching,)), _cache_message(caching, augment), caching)
        return
    for dataset in datasets.datasets:
        at = dataset.origin or CLI
        if dataset.resolution is None:
            report.problem(at, "no `resolution` for this dataset: set it in [general], in the [[datasets]] entry "
                               "or as `resolution` in the args file (e.g. 512)", "resolution")
        elif dataset.enable_bucket and not dataset.bucket_no_upscale and not (
                dataset.min_bucket_reso <= min(dataset.resolution) <= max(dataset.resolution)
                <= dataset.max_bucket_reso):
            report.problem(at, f"`resolution` {show(list(dataset.resolution))} must lie within min_bucket_reso "
                               f"{dataset.min_bucket_reso} and max_bucket_reso {dataset.max_bucket_reso}",
                           "resolution")
        augmented = [s for s in dataset.subsets if s.color_aug or s.random_crop]
        if caching and augmented:
            augment = [n for n in ("color_aug", "random_crop") if any(getattr(s, n) for s in augmented)]
            names = ", ".join(str(s.image_dir or s.metadata_file) for s in augmented)
            report.problem(augmented[0].origin or at, f"{_cache_message(caching, augment)} (subsets: {names})", caching)


def _cache_message(caching: str, augment: list[str]) -> str:
    keys = " and ".join(f"`{a}`" for a in augment)
    return (f"`{caching}` cannot be combined with {keys}: latents are computed once, so the augmentation would "
            "never change them. Turn one of them off")
