"""What to tell the user about a key that is not valid where it was written.

kohya silently ignores unknown args-file keys, so typos, LoRA options and keys of the other file kind go
unnoticed. Here each such key gets a specific verdict: a LoRA option (we only do full fine-tuning; one at a
value that changes nothing passes with a note), a kohya_ss GUI key that sd-scripts ignores (accepted with a
note), a key of the other config file, or a did-you-mean across every known key with the place where the
suggestion belongs. Unknown command-line flags get the same verdicts, worded as flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dataset_spec import ARGS_NAME, DATASET_KEYS
from .suggest import did_you_mean, normalize
from .train_config import OPTIONS
from .values import show

_SDXL = "an SDXL option; this trainer trains SD1.x/SD2.x"
_OTHER_ARCH = "an SD3/FLUX option; this trainer trains SD1.x/SD2.x"

# Keys the kohya_ss GUI (DreamBooth / Finetune tabs) writes into its TOML but train_db/fine_tune never read.
GUI_IGNORED: dict[str, str] = {
    "epoch": "the epoch count comes from max_train_epochs or max_train_steps",
    "noise_offset_type": "noise_offset / multires_noise_iterations already say which noise is used",
    "train_inpainting": "inpainting models are not trained by train_db/fine_tune",
    "disable_mmap_load_safetensors": "an SDXL loading option",
    "fused_optimizer_groups": _SDXL,
    "cache_text_encoder_outputs": _SDXL,
    "cache_text_encoder_outputs_to_disk": _SDXL,
    "learning_rate_te1": _SDXL + " (use learning_rate_te)",
    "learning_rate_te2": _SDXL + " (use learning_rate_te)",
    "block_lr": _SDXL,
    **{key: _OTHER_ARCH for key in (
        "ae", "apply_t5_attn_mask", "blocks_to_swap", "blockwise_fused_optimizers", "clip_g", "clip_l",
        "cpu_offload_checkpointing", "discrete_flow_shift", "double_blocks_to_swap", "guidance_scale", "logit_mean",
        "logit_std", "mem_eff_save", "mode_scale", "model_prediction_type", "save_clip", "save_t5xxl",
        "show_timesteps", "show_timesteps_resolution", "single_blocks_to_swap", "split_mode", "t5xxl",
        "t5xxl_device", "t5xxl_dtype", "t5xxl_max_token_length", "text_encoder_batch_size", "timestep_sampling",
        "train_blocks", "weighting_scheme")},
}

# Options of sd-scripts' LoRA trainer (train_network.py) and of the GUI's LoRA tab.
LORA_KEYS = frozenset({
    "network_module", "network_dim", "network_alpha", "network_args", "network_weights", "network_dropout",
    "network_train_unet_only", "network_train_text_encoder_only", "network_multiplier", "unet_lr",
    "text_encoder_lr", "dim_from_weights", "scale_weight_norms", "base_weights", "base_weights_multiplier",
    "training_comment", "no_metadata", "conv_dim", "conv_alpha", "LoRA_type", "lora_network_weights",
})
# LoRA keys that configure a network whatever their value: refused even when empty.
LORA_CONFIGURING = frozenset({
    "network_module", "network_dim", "network_alpha", "network_args", "network_weights", "conv_dim", "conv_alpha",
    "LoRA_type", "lora_network_weights",
})
# Values of the other LoRA keys that change nothing, besides false and empty ones.
_LORA_NEUTRAL = {"network_multiplier": 1.0, "network_dropout": 0.0, "scale_weight_norms": 0.0}
_NO_VALUE = object()

# Names from the kohya_ss GUI's own JSON and from tutorials, mapped to the option they mean.
RENAMED = {"max_resolution": "resolution", "optimizer": "optimizer_type", "lr_warmup": "lr_warmup_steps",
           "lr": "learning_rate", "epoch": "max_train_epochs", "epochs": "max_train_epochs",
           "steps": "max_train_steps"}

# How to say a dataset-config key in an args file, where there is a way.
_DATASET_KEY_IN_ARGS = {
    "batch_size": "in an args file it is called `train_batch_size`",
    "num_repeats": "in folder mode the repeats come from the folder name (`10_sks girl`), with in_json from "
                   "`dataset_repeats`",
    "image_dir": "in folder mode use `train_data_dir` (the parent of the `10_name` folders)",
    "metadata_file": "in folder mode use `in_json`",
    "is_reg": "in folder mode use `reg_data_dir`",
    "class_tokens": "in folder mode the class tokens come from the folder name (`10_sks girl`)",
}


@dataclass(frozen=True)
class Verdict:
    message: str
    ignore_with_note: bool = False


def _args_home(name: str) -> str:
    return f"belongs in [{OPTIONS[name].section}] or any args section"


def _dataset_home(name: str) -> str:
    return f"it belongs in {' or '.join(DATASET_KEYS[name].levels)} of --dataset_config"


def _lora_is_neutral(key: str, value: Any) -> bool:
    """A LoRA key at a value that changes nothing (`no_metadata = false`, `network_multiplier = 1.0`)."""
    if key in LORA_CONFIGURING or value is _NO_VALUE:
        return False
    if value is False or (isinstance(value, (str, list, dict)) and not value):
        return True
    return type(value) in (int, float) and value == _LORA_NEUTRAL.get(key)


def _lora(key: str, value: Any = _NO_VALUE) -> Verdict:
    if _lora_is_neutral(key, value):
        return Verdict(f"`{key} = {show(value)}` is a LoRA option (sd-scripts' train_network.py) at a value that "
                       "changes nothing: ignored.", ignore_with_note=True)
    tip = (" For full fine-tuning set `learning_rate` (U-Net) and `learning_rate_te` (text encoder)."
           if key in ("unet_lr", "text_encoder_lr") else "")
    return Verdict(f"`{key}` is a LoRA option (sd-scripts' train_network.py). This trainer fine-tunes the whole "
                   f"model and has no LoRA: remove the LoRA settings, or train LoRA with train_network.py.{tip}")


def _did_you_mean(key: str, place: str, in_args_file: bool, flag: str | None = None) -> Verdict:
    """Unknown everywhere: the nearest option or dataset key. `flag` is the name as typed on the command line."""
    guess = RENAMED.get(key) or did_you_mean(
        key, [n for n, o in OPTIONS.items() if not o.replaced_by] + list(DATASET_KEYS))
    if flag is not None:
        unknown = f"unknown option `{flag}`"
        if guess is None:
            return Verdict(f"{unknown} (see --help)")
        if guess in OPTIONS:
            return Verdict(f"{unknown}. Did you mean `--{guess}`?")
        return Verdict(f"{unknown}. Did you mean `{guess}` (a dataset-config key: {_dataset_home(guess)})?")
    if guess is None:
        what = "an option of sd-scripts' train_db.py / fine_tune.py" if in_args_file else "a dataset-config key"
        return Verdict(f"unknown key `{key}` {place}: not {what}.")
    if in_args_file:
        home = _args_home(guess) if guess in OPTIONS else f"a dataset-config key: {_dataset_home(guess)}"
    else:
        home = "" if guess in DATASET_KEYS else f"an args option: {_args_home(guess)} of --config_file"
    return Verdict(f"unknown key `{key}` {place}. Did you mean `{guess}`{f' ({home})' if home else ''}?")


def explain_flag(token: str) -> Verdict:
    """An unknown command-line flag, as typed (`--learnig_rate`, `--learning-rate=1e-6`)."""
    flag = token.split("=", 1)[0]
    return explain_args_key(normalize(flag), "", flag=flag)


def explain_args_key(key: str, place: str, value: Any = _NO_VALUE, flag: str | None = None) -> Verdict:
    """A key of an args file that is not an option; `value` lets a LoRA key that changes nothing pass with a note.

    With `flag` (the name as typed) the key is a command-line flag: kohya's argparse refuses those outright, so
    GUI keys are not ignored there and a flag's value is never looked at."""
    if key in LORA_KEYS:
        return _lora(key, value if flag is None else _NO_VALUE)
    if key in GUI_IGNORED and flag is None:
        return Verdict(f"`{key}` is written by the kohya_ss GUI and ignored by sd-scripts: ignored "
                       f"({GUI_IGNORED[key]}).", ignore_with_note=True)
    if key in DATASET_KEYS:
        hint = _DATASET_KEY_IN_ARGS.get(key)
        return Verdict(f"`{key}` is a dataset-config key, not an args option: {_dataset_home(key)}"
                       f"{'; ' + hint if hint else ''}.")
    return _did_you_mean(key, place, in_args_file=True, flag=flag)


def explain_dataset_key(key: str, place: str) -> Verdict:
    """A key of a dataset config that is not a dataset-config key."""
    if key in LORA_KEYS:
        return _lora(key)
    if key in OPTIONS and not OPTIONS[key].replaced_by:
        renamed = next((d for d, a in ARGS_NAME.items() if a == key), None)
        hint = f"; in a dataset config the same setting is called `{renamed}`" if renamed else ""
        return Verdict(f"`{key}` is an args option, not a dataset-config key: put it in the --config_file args "
                       f"file (any section) or on the command line{hint}.")
    return _did_you_mean(key, place, in_args_file=False)
