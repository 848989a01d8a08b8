"""Every args-file option as typed, frozen section dataclasses composed into `TrainConfig`; `OPTIONS` is the table.

Names, defaults and meanings follow sd-scripts' train_db.py and fine_tune.py (we accept the union), each
section named like the tables of kohya config files (`config.model` <-> `[model_arguments]`). Deliberate
differences: `max_token_length` defaults to 75 (kohya: unset, which means 75), `optimizer_type` to "AdamW"
(kohya: "", which means AdamW), `optimizer_args`/`lr_scheduler_args` are parsed into keyword dicts, and
`resolution`/`face_crop_aug_range` are tuples. `lr_warmup_steps`/`lr_decay_steps` keep kohya's meaning: an
int is a step count, a float (0 to 1) a fraction of all training steps. `multires_noise_iterations = 0` means
off, as in kohya, and is read as unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import Report, Where
from .names import (DYNAMO_BACKENDS, KOHYA_SAMPLE_SAMPLERS, LOG_LEVELS, LR_SCHEDULERS, RESIZE_INTERPOLATIONS,
                    to_optimizer_name)
from .options import Option, option, option_table
from .values import (show, to_bool, to_extension, to_float_list, to_float_pair, to_int_or_off, to_kwargs, to_path,
                     to_resolution, to_sampler, to_steps_or_fraction, to_str_list)

_NO = {"fp32": "no", "float": "no", "float32": "no", "none": "no", "false": "no"}
_FLOAT = {"fp32": "float", "float32": "float", "no": "float", "none": "float"}


@dataclass(frozen=True)
class ModelArgs:
    pretrained_model_name_or_path: str | None = option(None, "base model: .safetensors/.ckpt, Diffusers dir or hub id",
                                                       conv=to_path)
    v2: bool = option(False, "SD2.x architecture (OpenCLIP text encoder); required for any SD2 model")
    v_parameterization: bool = option(False, "v-prediction target (SD2.x 768-v models)")
    vae: str | None = option(None, "replace the checkpoint's VAE with this file or folder", conv=to_path)
    no_half_vae: bool = option(False, "keep the VAE in fp32 under mixed precision")
    tokenizer_cache_dir: str | None = option(None, "tokenizer cache folder (for offline training)", conv=to_path)
    clip_skip: int | None = option(None, "use the Nth-from-last text-encoder layer (2 = A1111 CLIP skip 2)", low=1)
    max_token_length: int = option(75, "caption length in tokens: 75, 150 or 225", choices=(75, 150, 225))


@dataclass(frozen=True)
class DatasetArgs:
    dataset_config: str | None = option(None, "dataset TOML/JSON ([general], [[datasets]], [[datasets.subsets]])",
                                        conv=to_path)
    train_data_dir: str | None = option(None, "folder mode: parent of `10_name` folders; with in_json the image folder",
                                        conv=to_path)
    reg_data_dir: str | None = option(None, "folder mode: parent of `1_class` regularization folders", conv=to_path)
    in_json: str | None = option(None, "fine-tuning metadata JSON (captions, tags, sizes) for train_data_dir",
                                 conv=to_path)
    dataset_repeats: int = option(1, "repeats of the in_json dataset", low=1)
    conditioning_data_dir: str | None = option(None, "mask images for masked_loss", conv=to_path)
    dataset_class: str | None = option(None, "custom dataset class package.module.Class")
    resolution: tuple[int, int] | None = option(None, 'training size "512" or "width,height"', conv=to_resolution)
    enable_bucket: bool = option(False, "aspect-ratio bucketing")
    min_bucket_reso: int = option(256, "smallest bucket side", low=1)
    max_bucket_reso: int = option(1024, "largest bucket side", low=1)
    bucket_reso_steps: int = option(64, "bucket side granularity", low=1)
    bucket_no_upscale: bool = option(False, "never upscale images into buckets")
    resize_interpolation: str | None = option(None, "resize filter (unset: area down, lanczos up)",
                                              choices=RESIZE_INTERPOLATIONS)
    cache_latents: bool = option(False, "encode images once and keep latents in RAM (no color_aug/random_crop)")
    cache_latents_to_disk: bool = option(False, "cache latents as .npz next to the images")
    vae_batch_size: int = option(1, "batch size while caching latents", low=1)
    skip_cache_check: bool = option(False, "trust existing latent caches without validating them")
    cache_info: bool = option(False, "cache image sizes and captions in metadata_cache.json")
    color_aug: bool = option(False, "weak hue jitter")
    flip_aug: bool = option(False, "random horizontal flip")
    face_crop_aug_range: tuple[float, float] | None = option(None, 'face-centred crop scale range "2.0,4.0"',
                                                             conv=to_float_pair)
    random_crop: bool = option(False, "random crop instead of centre crop")
    alpha_mask: bool = option(False, "use the image alpha channel as loss mask")
    debug_dataset: bool = option(False, "show batches and exit without training")
    max_data_loader_n_workers: int = option(8, "DataLoader workers (capped at CPU count)", low=0)
    persistent_data_loader_workers: bool = option(False, "keep DataLoader workers alive between epochs")
    caption_extension: str = option(".caption", "caption file extension (.txt must be set explicitly)",
                                    conv=to_extension)
    shuffle_caption: bool = option(False, "shuffle separator-split tags each step")
    caption_separator: str = option(",", "tag separator")
    keep_tokens: int = option(0, "first N tags are never shuffled or dropped", low=0)
    keep_tokens_separator: str = option("", "text before this separator is kept fixed, e.g. |||")
    secondary_separator: str | None = option(None, "joins tags into one shuffle unit")
    enable_wildcard: bool = option(False, "{a|b} choices and a random line of multi-line captions")
    caption_prefix: str | None = option(None, "text put before every caption")
    caption_suffix: str | None = option(None, "text put after every caption")
    caption_dropout_rate: float = option(0.0, "probability of an empty caption", low=0, high=1)
    caption_dropout_every_n_epochs: int = option(0, "empty captions in epochs divisible by N", low=0)
    caption_tag_dropout_rate: float = option(0.0, "probability of dropping each non-fixed tag", low=0, high=1)
    token_warmup_min: int = option(1, "tags used at step 0", low=0)
    token_warmup_step: float = option(0.0, "step where all tags are used (< 1: fraction of max_train_steps)", low=0)
    weighted_captions: bool = option(False, "parse (tag:1.2) weights in captions")


@dataclass(frozen=True)
class TrainingArgs:
    max_train_steps: int = option(1600, "optimizer steps to train", low=1)
    max_train_epochs: int | None = option(None, "epochs to train (overrides max_train_steps)", low=1)
    train_batch_size: int = option(1, "batch size (dataset config: batch_size)", low=1)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", low=1)
    gradient_checkpointing: bool = option(False, "recompute activations to save memory")
    mixed_precision: str = option("no", "no / fp16 / bf16", choices=("no", "fp16", "bf16"), hints=_NO)
    full_fp16: bool = option(False, "weights and gradients in fp16 (needs mixed_precision fp16)")
    full_bf16: bool = option(False, "weights and gradients in bf16 (needs mixed_precision bf16)")
    fp8_base: bool = option(False, "fp8 base model (other architectures only)")
    xformers: bool = option(False, "xformers attention")
    sdpa: bool = option(False, "torch scaled-dot-product attention")
    mem_eff_attn: bool = option(False, "slow pure-PyTorch memory-efficient attention")
    diffusers_xformers: bool = option(False, "xformers through Diffusers' switch")
    torch_compile: bool = option(False, "torch.compile the U-Net")
    dynamo_backend: str = option("inductor", "torch.compile backend", choices=DYNAMO_BACKENDS)
    seed: int | None = option(None, "global seed (unset: random)")
    train_text_encoder: bool = option(False, "fine-tuning: also train the text encoder")
    stop_text_encoder_training: int | None = option(
        None, "DreamBooth: train the text encoder until step N (-1: not at all)", low=-1)
    prior_loss_weight: float = option(1.0, "loss weight of regularization images", low=0)
    no_token_padding: bool = option(False, "do not pad tokens to 77 (old Diffusers behaviour)")
    masked_loss: bool = option(False, "mask the loss with conditioning_data_dir images or the alpha mask")
    noise_offset: float | None = option(None, "offset noise strength (about 0.05-0.1)", low=0)
    noise_offset_random_strength: bool = option(False, "draw the offset uniformly in [0, noise_offset]")
    adaptive_noise_scale: float | None = option(None, "extra offset scaled by the latent mean (needs noise_offset)")
    multires_noise_iterations: int | None = option(None, "pyramid noise iterations (6-10; 0: off)",
                                                   conv=to_int_or_off, low=1)
    multires_noise_discount: float = option(0.3, "pyramid noise discount", low=0, high=1)
    ip_noise_gamma: float | None = option(None, "input-perturbation noise (about 0.1)", low=0)
    ip_noise_gamma_random_strength: bool = option(False, "random input-perturbation strength")
    zero_terminal_snr: bool = option(False, "rescale betas to zero terminal SNR (meant for v-prediction)")
    min_timestep: int | None = option(None, "lowest training timestep (0-999)", low=0, high=999)
    max_timestep: int | None = option(None, "highest training timestep, exclusive (1-1000)", low=1, high=1000)
    min_snr_gamma: float | None = option(None, "Min-SNR loss weighting gamma (5 is typical)", low=0)
    scale_v_pred_loss_like_noise_pred: bool = option(False, "scale v loss like noise loss (needs v_parameterization)")
    v_pred_like_loss: float | None = option(None, "add a v-like loss term (not with v_parameterization)", low=0)
    debiased_estimation_loss: bool = option(False, "debiased estimation loss weighting")
    loss_type: str = option("l2", "l1 / l2 / huber / smooth_l1", choices=("l1", "l2", "huber", "smooth_l1"))
    huber_schedule: str = option("snr", "Huber schedule", choices=("constant", "exponential", "snr"))
    huber_c: float = option(0.1, "Huber decay parameter", low=0)
    huber_scale: float = option(1.0, "Huber scale parameter", low=0)
    lowram: bool = option(False, "load models straight to the GPU (RAM smaller than VRAM)")
    highvram: bool = option(False, "skip VRAM clean-ups while caching")


@dataclass(frozen=True)
class OptimizerArgs:
    optimizer_type: str = option("AdamW", "optimizer name (any case), torch.optim class or package.module.Class",
                                 conv=to_optimizer_name)
    optimizer_args: dict[str, Any] = option({}, 'optimizer keyword arguments: ["weight_decay=0.01", "betas=0.9,0.999"]',
                                            conv=to_kwargs, is_list=True)
    learning_rate: float = option(2e-6, "U-Net learning rate (and text encoder's unless learning_rate_te)", low=0)
    learning_rate_te: float | None = option(None, "text-encoder learning rate", low=0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)", low=0)
    lr_scheduler: str = option("constant", "learning-rate schedule", choices=LR_SCHEDULERS)
    lr_warmup_steps: int | float = option(0, "warmup: steps (int) or fraction of all steps (float, 1.0: all)",
                                          conv=to_steps_or_fraction)
    lr_decay_steps: int | float = option(0, "decay (warmup_stable_decay): steps or fraction of all steps",
                                         conv=to_steps_or_fraction)
    lr_scheduler_num_cycles: int = option(1, "cycles of cosine_with_restarts", low=1)
    lr_scheduler_power: float = option(1.0, "power of the polynomial schedule")
    lr_scheduler_type: str = option("", "scheduler class: torch.optim.lr_scheduler name or package.module.Class")
    lr_scheduler_args: dict[str, Any] = option({}, 'scheduler keyword arguments: ["T_max=100"]',
                                               conv=to_kwargs, is_list=True)
    lr_scheduler_timescale: int | None = option(None, "inverse_sqrt timescale", low=1)
    lr_scheduler_min_lr_ratio: float | None = option(None, "lr floor of cosine_with_min_lr / warmup_stable_decay",
                                                     low=0, high=1)
    fused_backward_pass: bool = option(False, "fuse backward and optimizer step (Adafactor; other architectures)")


@dataclass(frozen=True)
class SavingArgs:
    output_dir: str | None = option(None, "where models, states and samples go", conv=to_path)
    output_name: str | None = option(None, "file base name of saved models")
    save_model_as: str | None = option(None, "format (unset: same as input)",
                                       choices=("ckpt", "safetensors", "diffusers", "diffusers_safetensors"))
    use_safetensors: bool = option(False, "with save_model_as unset: .safetensors instead of .ckpt")
    save_precision: str | None = option(None, "cast when saving (unset: as trained)",
                                        choices=("float", "fp16", "bf16"), hints=_FLOAT)
    save_every_n_epochs: int | None = option(None, "save every N epochs", low=1)
    save_every_n_steps: int | None = option(None, "save every N steps", low=1)
    save_n_epoch_ratio: int | None = option(None, "save at least N times over the run", low=1)
    save_last_n_epochs: int | None = option(None, "keep only the last N epoch saves", low=1)
    save_last_n_epochs_state: int | None = option(None, "keep only the last N epoch states", low=1)
    save_last_n_steps: int | None = option(None, "keep step saves newer than N steps", low=1)
    save_last_n_steps_state: int | None = option(None, "keep step states newer than N steps", low=1)
    save_state: bool = option(False, "also save the training state with every save")
    save_state_on_train_end: bool = option(False, "save the training state at the end")
    resume: str | None = option(None, "state folder to resume from", conv=to_path)


@dataclass(frozen=True)
class SamplePromptArgs:
    sample_every_n_steps: int | None = option(None, "sample every N steps (0 or less: off)")
    sample_every_n_epochs: int | None = option(None, "sample at epochs divisible by N (overrides the steps option)")
    sample_at_first: bool = option(False, "sample before training")
    sample_prompts: str | None = option(None, "prompt file (.txt, .toml or .json)", conv=to_path)
    sample_sampler: str = option("ddim", "sampler of sample images", choices=KOHYA_SAMPLE_SAMPLERS)


@dataclass(frozen=True)
class LoggingArgs:
    logging_dir: str | None = option(None, "log root; enables TensorBoard", conv=to_path)
    log_prefix: str | None = option(None, "prefix of each run's log folder")
    log_with: str | None = option(None, "tensorboard / wandb / all", choices=("tensorboard", "wandb", "all"))
    log_tracker_name: str | None = option(None, "tracker project name")
    log_tracker_config: str | None = option(None, "TOML with tracker init arguments", conv=to_path)
    wandb_run_name: str | None = option(None, "wandb run name")
    wandb_api_key: str | None = option(None, "wandb key (keep it in the config file, not on the command line)")
    log_config: bool = option(False, "send the (path-stripped) arguments to the tracker")
    console_log_level: str | None = option(None, "console log level", choices=LOG_LEVELS)
    console_log_file: str | None = option(None, "log to this file instead of stderr", conv=to_path)
    console_log_simple: bool = option(False, "plain log lines")


@dataclass(frozen=True)
class MetadataArgs:
    metadata_title: str | None = option(None, "modelspec.title (default: output_name)")
    metadata_author: str | None = option(None, "modelspec.author")
    metadata_description: str | None = option(None, "modelspec.description")
    metadata_license: str | None = option(None, "modelspec.license")
    metadata_tags: str | None = option(None, "modelspec.tags, comma-separated")
    metadata_usage_hint: str | None = option(None, "modelspec.usage_hint")
    metadata_thumbnail: str | None = option(None, "modelspec.thumbnail: data URL or image file")
    metadata_merged_from: str | None = option(None, "modelspec.merged_from")
    metadata_trigger_phrase: str | None = option(None, "modelspec.trigger_phrase")
    metadata_preprocessor: str | None = option(None, "modelspec.preprocessor")
    metadata_is_negative_embedding: str | None = option(None, "modelspec.is_negative_embedding")


@dataclass(frozen=True)
class HuggingfaceArgs:
    huggingface_repo_id: str | None = option(None, "upload to this Hugging Face repo")
    huggingface_repo_type: str | None = option(None, "repo type")
    huggingface_path_in_repo: str | None = option(None, "path inside the repo")
    huggingface_token: str | None = option(None, "Hugging Face token")
    huggingface_repo_visibility: str | None = option(None, "public or private")
    save_state_to_huggingface: bool = option(False, "upload states too")
    resume_from_huggingface: bool = option(False, "resume from a repo ({repo_id}/{path}:{revision}:{type})")
    async_upload: bool = option(False, "upload in the background")


@dataclass(frozen=True)
class DistributedArgs:
    ddp_timeout: int | None = option(None, "DDP timeout in minutes", low=1)
    ddp_gradient_as_bucket_view: bool = option(False, "DDP gradient_as_bucket_view")
    ddp_static_graph: bool = option(False, "DDP static_graph")
    deepspeed: bool = option(False, "DeepSpeed training")
    zero_stage: int = option(2, "DeepSpeed ZeRO stage", choices=(0, 1, 2, 3))
    offload_optimizer_device: str | None = option(None, "cpu or nvme", choices=("cpu", "nvme"))
    offload_optimizer_nvme_path: str | None = option(None, "NVMe path for optimizer offload", conv=to_path)
    offload_param_device: str | None = option(None, "cpu or nvme", choices=("cpu", "nvme"))
    offload_param_nvme_path: str | None = option(None, "NVMe path for parameter offload", conv=to_path)
    zero3_init_flag: bool = option(False, "deepspeed.zero.Init for ZeRO-3")
    zero3_save_16bit_model: bool = option(False, "save 16-bit model under ZeRO-3")
    fp16_master_weights_and_gradients: bool = option(False, "fp16 master weights (DeepSpeed)")


@dataclass(frozen=True)
class CertainArgs:
    """Our own options (not in sd-scripts): machine-readable progress and data strictness."""

    progress_jsonl: str | None = option(None, "append JSON-lines progress events to this file (the WebUI tab reads it)",
                                        conv=to_path)
    progress_stdout: bool = option(False, "print JSON-lines progress events to stdout instead of the progress bar")
    strict_data: bool = option(False, "stop when an image cannot be read, instead of skipping it with a report")


@dataclass(frozen=True)
class ValidationArgs:
    """Measurements while training: validation loss (kohya's names), the drift meter, the overfit rule."""

    validate_every_n_steps: int | None = option(None, "evaluate validation loss and drift every N steps (and at every "
                                                      "save)", low=1)
    validate_every_n_epochs: int | None = option(None, "evaluate validation loss and drift every N epochs", low=1)
    max_validation_steps: int | None = option(None, "validation batches per evaluation (unset: all held-out images)",
                                              low=1)
    drift_words: str | None = option(None, "word list of the drift meter (as reg_word_list; unset: the "
                                           "regularization word list, else the training captions)", conv=to_path)
    drift_word_count: int = option(16, "the drift meter's words: the N most frequent of its list (0: off)", low=0)
    overfit_tolerance: float = option(0.02, "overfitting: validation loss above its running minimum by this "
                                            "fraction ...", low=0)
    overfit_patience: int = option(3, "... for this many evaluations in a row", low=1)
    overfit_max_drift: float | None = option(None, "overfitting also when the mean drift exceeds this (e.g. 0.3)",
                                             low=0)
    stop_on_overfit: bool = option(False, "end the run when overfitting is detected")


REG_MODES = ("none", "self_wordfreq", "pregenerated_wordfreq", "prior")


@dataclass(frozen=True)
class RegularizationArgs:
    """The Certain method's regularization against language drift (`[regularization]`; inside that table the
    `reg_` prefix may be left out: `mode = "self_wordfreq"`)."""

    reg_mode: str = option("none", "none / self_wordfreq (the current model generates single-word images while "
                                   "training) / pregenerated_wordfreq (a gen_reg_images.py --wordfreq folder) / "
                                   "prior (DreamBooth class images from reg_data_dir)", choices=REG_MODES,
                           hints={"self": "self_wordfreq", "wordfreq": "self_wordfreq", "pregenerated":
                                  "pregenerated_wordfreq", "dreambooth": "prior", "off": "none"})
    reg_word_list: str | None = option(None, 'word frequencies: a tag CSV (tag autocomplete\'s danbooru.csv), a '
                                             '`word count` text file, a caption folder, or "captions" (the training '
                                             'captions)', conv=to_path)
    reg_tag_types: tuple[str, ...] = option((), "tag CSV types to keep: general, artist, copyright, character, "
                                                "meta (or 0-5); unset: general", conv=to_str_list, is_list=True)
    reg_min_count: int = option(1, "drop words counted fewer times", low=1)
    reg_top_k: int = option(0, "keep only the K most frequent words (0: all)", low=0)
    reg_include: tuple[str, ...] = option((), "keep only words matching these (exact or * globs)",
                                          conv=to_str_list, is_list=True)
    reg_exclude: tuple[str, ...] = option((), "drop words matching these (exact or * globs)", conv=to_str_list,
                                          is_list=True)
    reg_exclude_file: str | None = option(None, "file of exclude patterns, one per line", conv=to_path)
    reg_trigger_words: tuple[str, ...] = option((), "the training trigger words, never drawn (folder-mode class "
                                                    "tokens are added unless reg_keep_trigger_words)",
                                                conv=to_str_list, is_list=True)
    reg_keep_trigger_words: bool = option(False, "do not drop the training's class tokens from the word list")
    reg_alpha: float = option(1.0, "P(word) ∝ count^alpha: 1 = frequency ratio, 0 = uniform", low=0)
    reg_ratio: float = option(0.25, "regularization images per training image (0.25 = 1:4)", low=0)
    reg_batch: int | None = option(None, "images per regularization batch (unset: from reg_ratio)", low=1)
    reg_every_n_steps: int = option(1, "add a regularization batch every N optimizer steps", low=1)
    reg_loss_weight: float = option(1.0, "loss weight of regularization images", low=0)
    reg_warmup_steps: int = option(0, "no regularization before this step", low=0)
    reg_sampler: str = option("euler_a", "sampler of the generated images: euler_a, euler, dpmpp_2m, ddim (or "
                                         "A1111's label, e.g. \"Euler a\")", conv=to_sampler)
    reg_steps: int = option(20, "sampling steps of the generated images", low=1)
    reg_cfg_scale: float = option(7.0, "CFG scale of the generated images", low=0)
    reg_resolution: tuple[int, int] | None = option(None, 'size of the generated images "512" or "width,height" '
                                                          '(unset: the training resolution)', conv=to_resolution)
    reg_negative_prompt: str = option("", "negative prompt of the generated images")
    reg_seed: int | None = option(None, "seed of the word stream and image seeds (unset: from seed)")
    reg_images_dir: str | None = option(None, "pregenerated_wordfreq: the folder gen_reg_images.py --wordfreq made",
                                        conv=to_path)
    save_reg_images: bool = option(False, "also write the generated images (PNG with infotext) to "
                                          "<output_dir>/reg_images")


WORKFLOWS = ("none", "anti_overfit", "merge")
MERGE_RATIOS = ("weights", "auto")


@dataclass(frozen=True)
class WorkflowArgs:
    """A workflow around the trainer (`[workflow]`; inside that table the `workflow_` prefix may be left out)."""

    workflow: str = option("none", "none / anti_overfit (train the suspect subset until it overfits, replace it by "
                                   "single-word images its last good checkpoint draws, retrain from the base) / merge "
                                   "(train on the data with images the teacher models draw mixed in)",
                           choices=WORKFLOWS, hints={"anti-overfit": "anti_overfit", "antioverfit": "anti_overfit",
                                                     "rebuild": "anti_overfit", "off": "none", "merging": "merge",
                                                     "merge_by_training": "merge"})
    workflow_subset: str | None = option(None, "anti_overfit: image_dir of the subset suspected of the overfitting",
                                         conv=to_path)
    workflow_factor: float = option(1.0, "anti_overfit: generated images per image of that subset", low=0)
    workflow_word_list: str | None = option(None, "words of the generated images (as reg_word_list; unset: "
                                                  "reg_word_list, else the training captions)", conv=to_path)
    workflow_teachers: tuple[str, ...] = option((), "merge: the models to merge (checkpoint files)", conv=to_str_list,
                                                is_list=True)
    workflow_weights: tuple[float, ...] = option((), "merge: each teacher's weight in the merge, as a weight merge's "
                                                     "(unset: equal)", conv=to_float_list, is_list=True)
    workflow_ratio: str = option("weights", "merge: teachers' shares of the generated images: weights (as the "
                                            "weights) / auto (moved after each epoch so that where the student's "
                                            "behaviour lies among the teachers' approaches the weights)",
                                 choices=MERGE_RATIOS,
                                 hints={"fixed": "weights", "automatic": "auto"})
    workflow_teacher_share: float = option(1.0, "merge: teacher images per own training image", low=0)
    workflow_max_reuse: int = option(2, "merge: times a teacher image may be trained on; the pools grow ahead of "
                                        "each epoch so none is used more", low=1)


@dataclass(frozen=True)
class ConfigArgs:
    config_file: str | None = option(None, "args TOML with option values (.toml is added when missing)",
                                     conv=to_path, cli_only=True)
    output_config: bool = option(False, "write the arguments to --config_file and exit", cli_only=True)
    check: bool = option(False, "check the options, the dataset config, the data and the base model's file, print "
                                "the plan, and exit without training or writing anything", cli_only=True)


@dataclass(frozen=True)
class TrainConfig:
    """All training options. `config.optimizer.learning_rate` is kohya's `learning_rate`."""

    model: ModelArgs = field(default_factory=ModelArgs)
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    training: TrainingArgs = field(default_factory=TrainingArgs)
    optimizer: OptimizerArgs = field(default_factory=OptimizerArgs)
    saving: SavingArgs = field(default_factory=SavingArgs)
    sample_prompt: SamplePromptArgs = field(default_factory=SamplePromptArgs)
    logging: LoggingArgs = field(default_factory=LoggingArgs)
    metadata: MetadataArgs = field(default_factory=MetadataArgs)
    huggingface: HuggingfaceArgs = field(default_factory=HuggingfaceArgs)
    distributed: DistributedArgs = field(default_factory=DistributedArgs)
    certain: CertainArgs = field(default_factory=CertainArgs)
    validation: ValidationArgs = field(default_factory=ValidationArgs)
    regularization: RegularizationArgs = field(default_factory=RegularizationArgs, metadata={"table": "regularization"})
    workflow: WorkflowArgs = field(default_factory=WorkflowArgs, metadata={"table": "workflow"})
    config: ConfigArgs = field(default_factory=ConfigArgs)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from kohya-style flat names (already converted); missing names keep their defaults."""
        sections: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            attr, key = OPTIONS[name].attr
            sections.setdefault(attr, {})[key] = value
        base = cls()
        return replace(base, **{attr: replace(getattr(base, attr), **kw) for attr, kw in sections.items()})

    def to_flat(self) -> dict[str, Any]:
        """kohya-style flat name -> value, in table order."""
        return {f.name: getattr(section, f.name) for section in (getattr(self, s.name) for s in fields(self))
                for f in fields(section)}

    def get(self, name: str) -> Any:
        """A value by its kohya name, e.g. `get("learning_rate")`."""
        attr, key = OPTIONS[name].attr
        return getattr(getattr(self, attr), key)


TABLE_PREFIXES = {"regularization": "reg_", "workflow": "workflow_"}


def table_key(table: str, key: str) -> str:
    """The option a key names inside `[table]`: in [regularization] the `reg_` prefix may be left out (and in
    [workflow] `workflow_`), so there `seed` and `resolution` are the regularization's own (reg_seed,
    reg_resolution), not the training's."""
    prefix = TABLE_PREFIXES.get(table)
    prefixed = OPTIONS.get(f"{prefix}{key}") if prefix else None
    if prefixed is not None and prefixed.section == table:
        return prefixed.name
    return key


def _alias(name: str, replaced_by: str, help: str, section: str, value: Any = None) -> Option:
    """An old name for `replaced_by`: a renamed key (its value is moved), or a flag that sets `value` when true."""
    is_flag = value is not None
    return Option(name=name, section=section, help=help, default=False if is_flag else None,
                  convert=to_bool if is_flag else to_extension, is_flag=is_flag, replaced_by=replaced_by,
                  replaced_value=value)


# Old names kohya still accepts; the loader turns them into the option they stand for.
ALIASES = [
    _alias("caption_extention", "caption_extension", "old spelling of caption_extension", "dataset_arguments"),
    _alias("use_8bit_adam", "optimizer_type", "old flag for optimizer_type AdamW8bit", "optimizer_arguments",
           "AdamW8bit"),
    _alias("use_lion_optimizer", "optimizer_type", "old flag for optimizer_type Lion", "optimizer_arguments", "Lion"),
]

OPTIONS: dict[str, Option] = option_table(TrainConfig, ALIASES)


def resolve_aliases(values: dict[str, Any], where: dict[str, Where], report: Report) -> None:
    """Replace old names by the option they stand for (`Option.replaced_by`), within one source (a file or the
    command line). A flag alias set to false is dropped: it chooses nothing."""
    for target in dict.fromkeys(a.replaced_by for a in ALIASES):
        given = [(a, values.pop(a.name), where.pop(a.name)) for a in ALIASES
                 if a.replaced_by == target and a.name in values]
        chosen = [(a, a.replaced_value if a.is_flag else value, at) for a, value, at in given
                  if value or not a.is_flag]
        if chosen:
            _replace(target, chosen, values, where, report)


def _replace(target: str, chosen: list[tuple[Option, Any, Where]], values: dict[str, Any], where: dict[str, Where],
             report: Report) -> None:
    """Give `target` the value of the one alias that sets it, or report the keys that compete for it."""
    alias, value, at = chosen[0]
    names = [a.name for a, _, _ in chosen] + ([target] if target in values else [])
    if len(names) > 1 and alias.is_flag:  # kohya's optimizer flags are the only flag aliases
        report.problem(at, f"keys {' and '.join(f'`{n}`' for n in names)} each choose an optimizer; keep one",
                       alias.name)
    elif len(names) > 1:
        report.problem(at, f"key `{alias.name}` (old spelling) and `{target}` are both set; keep `{target}`",
                       alias.name)
    else:
        values[target], where[target] = value, at
        report.note(at, f"read `{alias.name} = true` as `{target} = {show(value)}`" if alias.is_flag
                    else f"read `{alias.name}` (old spelling) as `{target}`")
