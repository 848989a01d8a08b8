"""Which sd-scripts options this trainer leaves out, and the one warning each gets when it is set.

Every option is either read by the trainer or listed here with the reason; a test checks that the reads and
the lists cover the whole option table, so no option is ever ignored silently.
"""

from __future__ import annotations

from ..config import TrainConfig

_NO_HUB = "uploads to the Hugging Face Hub are not supported (this tool works offline); copy the files yourself"
_DEEPSPEED = "DeepSpeed is not supported; use plain DDP (`accelerate launch`), gradient checkpointing and 8-bit AdamW"
_OTHER_ARCH = "only applies to other architectures (SDXL, SD3, FLUX) in sd-scripts"

UNSUPPORTED: dict[str, str] = {
    **{name: _NO_HUB for name in ("huggingface_repo_id", "huggingface_repo_type", "huggingface_path_in_repo",
                                  "huggingface_token", "huggingface_repo_visibility", "save_state_to_huggingface",
                                  "resume_from_huggingface", "async_upload")},
    **{name: _DEEPSPEED for name in ("deepspeed", "zero_stage", "offload_optimizer_device", "offload_optimizer_nvme_path",
                                     "offload_param_device", "offload_param_nvme_path", "zero3_init_flag",
                                     "zero3_save_16bit_model", "fp16_master_weights_and_gradients")},
    "fp8_base": _OTHER_ARCH,
    "fused_backward_pass": _OTHER_ARCH,
    "masked_loss": "masked loss is not implemented yet; the whole image is trained",
    "dataset_class": "custom dataset classes are not supported; use dataset_config",
    "weighted_captions": "(tag:1.2) caption weights are not parsed during training yet; the text is used as written",
    "no_token_padding": "tokens are always padded to 77 per chunk, as A1111 does at generation time",
    "full_fp16": "full fp16 weights are not implemented; mixed_precision fp16 with fp32 master weights is used",
    "log_with": "only TensorBoard logging is built in (set logging_dir); wandb is not supported",
    "wandb_run_name": "wandb is not supported; use TensorBoard (logging_dir)",
    "wandb_api_key": "wandb is not supported; use TensorBoard (logging_dir)",
    "log_tracker_config": "tracker init arguments are not used; TensorBoard needs none",
    "lowram": "models are loaded to the CPU first and moved once; no effect",
    "highvram": "no effect: nothing is offloaded between steps",
    "tokenizer_cache_dir": "not needed: the CLIP tokenizer ships with this project and never touches the network",
    "console_log_level": "the log has no levels: everything goes to stderr (and to console_log_file when set)",
    "console_log_simple": "the log lines are already plain",
}

# Options whose effect is always on here, so setting them changes nothing and needs no warning.
BUILT_IN: dict[str, str] = {
    "sdpa": "PyTorch scaled-dot-product attention is the default attention",
    "mem_eff_attn": "PyTorch's SDPA already is memory-efficient attention",
    "use_safetensors": "models are saved as .safetensors unless save_model_as says otherwise",
}

# Where the images are: the config loader turns these into the datasets (`LoadedConfig.datasets`), so training
# never reads them itself.
DATASET_SOURCES = ("dataset_config", "train_data_dir", "reg_data_dir", "in_json")


def unsupported_notes(train: TrainConfig) -> list[str]:
    """One line for each left-out option that the config sets to something other than its default."""
    defaults = TrainConfig().to_flat()
    values = train.to_flat()
    return [f"`{name}` is set but not used: {reason}." for name, reason in UNSUPPORTED.items()
            if name in values and values[name] != defaults[name]]
