"""Configs people actually paste load, with their quirks read the way they meant them.

Covers: a sectioned kohya args file from a tutorial, a flat kohya_ss GUI file, every option name of
sd-scripts' train_db.py / fine_tune.py, value conversions, and the shipped presets.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from library.config import OPTIONS, TrainConfig, load_train_config
from library.config.args_file import read_args_file
from library.config.values import BadValue, show

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "presets"

# Every option of sd-scripts' train_db.py and fine_tune.py at commit 48d368fa (the union; 173 names).
KOHYA_OPTION_NAMES = """
adaptive_noise_scale alpha_mask async_upload bucket_no_upscale bucket_reso_steps cache_info cache_latents
cache_latents_to_disk caption_dropout_every_n_epochs caption_dropout_rate caption_extension caption_extention
caption_prefix caption_separator caption_suffix caption_tag_dropout_rate clip_skip color_aug
conditioning_data_dir config_file console_log_file console_log_level console_log_simple dataset_class
dataset_config dataset_repeats ddp_gradient_as_bucket_view ddp_static_graph ddp_timeout debiased_estimation_loss
debug_dataset deepspeed diffusers_xformers dynamo_backend enable_bucket enable_wildcard face_crop_aug_range
flip_aug fp16_master_weights_and_gradients fp8_base full_bf16 full_fp16 fused_backward_pass
gradient_accumulation_steps gradient_checkpointing highvram huber_c huber_scale huber_schedule
huggingface_path_in_repo huggingface_repo_id huggingface_repo_type huggingface_repo_visibility huggingface_token
in_json ip_noise_gamma ip_noise_gamma_random_strength keep_tokens keep_tokens_separator learning_rate
learning_rate_te log_config log_prefix log_tracker_config log_tracker_name log_with logging_dir loss_type lowram
lr_decay_steps lr_scheduler lr_scheduler_args lr_scheduler_min_lr_ratio lr_scheduler_num_cycles
lr_scheduler_power lr_scheduler_timescale lr_scheduler_type lr_warmup_steps masked_loss max_bucket_reso
max_data_loader_n_workers max_grad_norm max_timestep max_token_length max_train_epochs max_train_steps
mem_eff_attn metadata_author metadata_description metadata_is_negative_embedding metadata_license
metadata_merged_from metadata_preprocessor metadata_tags metadata_thumbnail metadata_title
metadata_trigger_phrase metadata_usage_hint min_bucket_reso min_snr_gamma min_timestep mixed_precision
multires_noise_discount multires_noise_iterations no_half_vae no_token_padding noise_offset
noise_offset_random_strength offload_optimizer_device offload_optimizer_nvme_path offload_param_device
offload_param_nvme_path optimizer_args optimizer_type output_config output_dir output_name
persistent_data_loader_workers pretrained_model_name_or_path prior_loss_weight random_crop reg_data_dir
resize_interpolation resolution resume resume_from_huggingface sample_at_first sample_every_n_epochs
sample_every_n_steps sample_prompts sample_sampler save_every_n_epochs save_every_n_steps save_last_n_epochs
save_last_n_epochs_state save_last_n_steps save_last_n_steps_state save_model_as save_n_epoch_ratio
save_precision save_state save_state_on_train_end save_state_to_huggingface scale_v_pred_loss_like_noise_pred
sdpa secondary_separator seed shuffle_caption skip_cache_check stop_text_encoder_training token_warmup_min
token_warmup_step tokenizer_cache_dir torch_compile train_batch_size train_data_dir train_text_encoder
use_8bit_adam use_lion_optimizer use_safetensors v2 v_parameterization v_pred_like_loss vae vae_batch_size
wandb_api_key wandb_run_name weighted_captions xformers zero3_init_flag zero3_save_16bit_model zero_stage
zero_terminal_snr
""".split()


def _write(path: Path, text: str) -> Path:
    path.write_text(dedent(text), encoding="utf-8")
    return path


def _sample(name: str):
    """A valid TOML value for an option whose default is unset."""
    opt = OPTIONS[name]
    by_converter = {"to_path": "some/path", "to_str": "x", "to_int": 1, "to_float": 0.1, "to_bool": True,
                    "to_resolution": "512,512", "to_float_pair": "2.0,4.0", "to_extension": ".txt",
                    "to_kwargs": ["a=1"], "to_int_or_off": 6, "to_str_list": ["a", "b"], "to_sampler": "euler_a"}
    if name == "max_timestep":  # must stay above min_timestep
        return 1000
    return opt.choices[0] if opt.choices else by_converter[opt.convert.__name__]


OUR_OPTION_NAMES = ["progress_jsonl", "progress_stdout", "strict_data"]
COMMAND_OPTION_NAMES = ["check"]  # what the command does instead of training, beside kohya's output_config
REGULARIZATION_OPTION_NAMES = [
    "reg_mode", "reg_word_list", "reg_tag_types", "reg_min_count", "reg_top_k", "reg_include", "reg_exclude",
    "reg_exclude_file", "reg_trigger_words", "reg_keep_trigger_words", "reg_alpha", "reg_ratio", "reg_batch",
    "reg_every_n_steps", "reg_loss_weight", "reg_warmup_steps", "reg_sampler", "reg_steps", "reg_cfg_scale",
    "reg_resolution", "reg_negative_prompt", "reg_seed", "reg_images_dir", "save_reg_images"]
# kohya's newer validation names (train_network.py) and our drift meter and overfit rule
VALIDATION_OPTION_NAMES = [
    "validate_every_n_steps", "validate_every_n_epochs", "max_validation_steps", "drift_words", "drift_word_count",
    "overfit_tolerance", "overfit_patience", "overfit_max_drift", "stop_on_overfit"]

WORKFLOW_OPTION_NAMES = ["workflow", "workflow_subset", "workflow_factor", "workflow_word_list", "workflow_teachers",
                         "workflow_weights", "workflow_ratio", "workflow_teacher_share", "workflow_max_reuse"]


def test_option_table_holds_the_kohya_options_and_our_own():
    assert len(KOHYA_OPTION_NAMES) == 173
    assert set(OPTIONS) == (set(KOHYA_OPTION_NAMES) | set(OUR_OPTION_NAMES) | set(REGULARIZATION_OPTION_NAMES)
                            | set(VALIDATION_OPTION_NAMES) | set(WORKFLOW_OPTION_NAMES) | set(COMMAND_OPTION_NAMES))
    assert all(OPTIONS[name].section == "workflow" for name in WORKFLOW_OPTION_NAMES)
    assert all(OPTIONS[name].section == "validation_arguments" for name in VALIDATION_OPTION_NAMES)
    assert all(OPTIONS[name].section == "certain_arguments" for name in OUR_OPTION_NAMES)
    assert all(OPTIONS[name].section == "regularization" for name in REGULARIZATION_OPTION_NAMES)


@pytest.mark.parametrize("name", KOHYA_OPTION_NAMES)
def test_every_kohya_key_is_accepted_in_an_args_file(tmp_path, name):
    opt = OPTIONS[name]
    value = opt.default if opt.default not in (None, {}) else _sample(name)
    file = read_args_file(str(_write(tmp_path / "all.toml", f"[any_section]\n{name} = {show(value)}\n")))
    assert file.report.problems == []


def test_a_file_setting_every_option_loads(tmp_path):
    """All keys at once (flags at their defaults, so no cross-check fires), as a full GUI export would."""
    (tmp_path / "a").mkdir()  # found next to the dataset config
    dataset = _write(tmp_path / "data.toml", "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = 'a'\n")
    lines = []
    for name, opt in OPTIONS.items():
        if name == "caption_extension":  # its old spelling caption_extention is set instead
            continue
        value = opt.default if opt.default not in (None, {}) or opt.is_flag else _sample(name)
        value = str(dataset) if name == "dataset_config" else value
        lines.append(f"{name} = {show(value)}")
    loaded = load_train_config(["--config_file", str(_write(tmp_path / "all.toml", "\n".join(lines) + "\n"))])
    assert loaded.train.dataset.caption_extension == ".txt"
    assert loaded.train.optimizer.optimizer_args == {"a": 1}
    assert any("`config_file` has no effect inside a config file" in note for note in loaded.notes)
    assert any("`train_data_dir` is ignored because `dataset_config` is given" in n for n in loaded.notes)


def test_sectioned_kohya_args_file_from_a_tutorial(tmp_path):
    args = _write(tmp_path / "config.toml", """\
        [model_arguments]
        v2 = false
        v_parameterization = false
        pretrained_model_name_or_path = "/content/pretrained_model/Animefull-final-pruned.ckpt"
        vae = "/content/vae/anime.vae.pt"

        [optimizer_arguments]
        optimizer_type = "AdamW8bit"
        learning_rate = 2e-6
        max_grad_norm = 1.0
        optimizer_args = [ "weight_decay=0.1", "betas=0.9,0.999",]
        lr_scheduler = "constant"
        lr_warmup_steps = 0

        [dataset_arguments]
        cache_latents = true
        debug_dataset = false
        vae_batch_size = 4

        [training_arguments]
        output_dir = "/content/fine_tune/output"
        output_name = "anime"
        save_precision = "fp16"
        save_every_n_epochs = 1
        train_batch_size = 4
        max_token_length = 225
        mem_eff_attn = false
        xformers = true
        max_train_epochs = 10
        max_data_loader_n_workers = 8
        persistent_data_loader_workers = true
        gradient_checkpointing = false
        gradient_accumulation_steps = 1
        mixed_precision = "fp16"
        clip_skip = 2
        logging_dir = "/content/fine_tune/logs"
        log_prefix = "anime"
        lowram = true

        [sample_prompt_arguments]
        sample_every_n_epochs = 1
        sample_sampler = "k_euler_a"

        [dreambooth_arguments]
        prior_loss_weight = 1.0

        [saving_arguments]
        save_model_as = "ckpt"
        """)
    loaded = load_train_config(["--config_file", str(args)])
    train = loaded.train
    assert train.model.pretrained_model_name_or_path.endswith("Animefull-final-pruned.ckpt")
    assert train.optimizer.optimizer_type == "AdamW8bit"
    assert train.optimizer.optimizer_args == {"weight_decay": 0.1, "betas": (0.9, 0.999)}
    assert train.training.train_batch_size == 4 and train.training.xformers is True
    assert train.model.max_token_length == 225 and train.model.clip_skip == 2
    assert train.saving.save_model_as == "ckpt" and train.sample_prompt.sample_sampler == "k_euler_a"
    assert loaded.datasets is None and loaded.notes == []


def test_kohya_ss_gui_flat_file_with_its_quirks(tmp_path):
    (tmp_path / "img" / "10_sks girl").mkdir(parents=True)
    args = _write(tmp_path / "config_dreambooth-20240101-120000.toml", f"""\
        bucket_no_upscale = true
        bucket_reso_steps = 64
        cache_latents = true
        caption_extension = ".txt"
        clip_skip = 1
        dynamo_backend = "no"
        enable_bucket = true
        epoch = 10
        gradient_accumulation_steps = 1
        huber_c = 0.1
        huber_schedule = "snr"
        learning_rate = 1e-5
        learning_rate_te = 1e-5
        loss_type = "l2"
        lr_scheduler = "cosine"
        lr_scheduler_args = []
        lr_scheduler_num_cycles = 10
        lr_scheduler_power = 1
        lr_warmup_steps = 0.1
        max_bucket_reso = 2048
        max_data_loader_n_workers = 0
        max_grad_norm = 1
        max_timestep = 1000
        max_token_length = 75
        max_train_steps = 1600
        min_bucket_reso = 256
        mixed_precision = "fp16"
        multires_noise_discount = 0.3
        noise_offset_type = "Original"
        optimizer_type = "AdamW8bit"
        output_dir = "C:/kohya/outputs"
        output_name = "last"
        persistent_data_loader_workers = 0
        pretrained_model_name_or_path = "runwayml/stable-diffusion-v1-5"
        prior_loss_weight = 1
        resolution = "512,512"
        sample_prompts = "C:/kohya/outputs/sample/prompt.txt"
        sample_sampler = "euler_a"
        save_every_n_epochs = 1
        save_model_as = "safetensors"
        save_precision = "fp16"
        train_batch_size = 1
        train_data_dir = "{(tmp_path / 'img').as_posix()}"
        train_inpainting = false
        wandb_run_name = "last"
        xformers = true
        """)
    loaded = load_train_config(["--config_file", str(args)])
    train = loaded.train
    assert train.optimizer.lr_warmup_steps == 0.1  # a fraction of all steps
    assert train.optimizer.lr_scheduler_args == {}
    assert train.model.max_token_length == 75
    assert train.dataset.persistent_data_loader_workers is False
    assert train.training.dynamo_backend == "no"
    assert train.dataset.resolution == (512, 512)
    assert train.optimizer.max_grad_norm == 1.0 and isinstance(train.optimizer.max_grad_norm, float)
    notes = "\n".join(loaded.notes)
    assert "config_dreambooth-20240101-120000.toml:8: note: `epoch` is written by the kohya_ss GUI" in notes
    assert ":29: note: `noise_offset_type` is written by the kohya_ss GUI and ignored by sd-scripts" in notes
    assert ":33: note: key `persistent_data_loader_workers`: read 0 as false" in notes
    assert "`train_inpainting`" in notes
    assert len(loaded.notes) == 4
    (subset,) = loaded.datasets.datasets[0].subsets
    assert (subset.num_repeats, subset.class_tokens, subset.caption_extension) == (10, "sks girl", ".txt")


LENIENT = {
    "resolution": [("512", (512, 512)), ("768,512", (768, 512)), (" 768, 512 ", (768, 512)), (512, (512, 512)),
                   ([768, 512], (768, 512)), ([640], (640, 640))],
    "face_crop_aug_range": [("2.0,4.0", (2.0, 4.0)), ([2, 4], (2.0, 4.0))],
    "lr_warmup_steps": [(100, 100), (0.1, 0.1), ("10%", 0.1), ("250", 250), (300.0, 300),
                        (1.0, 1.0), ("100%", 1.0), (0.0, 0.0)],  # a float is a fraction: 1.0 = the whole run
    "multires_noise_iterations": [(0, None), (6, 6)],  # 0 means off in kohya
    "learning_rate": [("1e-6", 1e-6), (1, 1.0)],
    "max_train_steps": [("1600", 1600), (2000.0, 2000)],
    "xformers": [(1, True), (0, False), ("false", False), ("True", True)],
    "optimizer_args": [([], {}), (["betas=(0.9, 0.99)", "decouple=True", "eps=1e-8"],
                                  {"betas": (0.9, 0.99), "decouple": True, "eps": 1e-8}),
                       (["betas=0.9,0.999"], {"betas": (0.9, 0.999)}), (["d_coef = 2"], {"d_coef": 2})],
    "optimizer_type": [("adamw8bit", "AdamW8bit"), ("PRODIGY", "Prodigy"), ("", "AdamW"), ("SGD", "SGD"),
                       ("bitsandbytes.optim.AdEMAMix8bit", "bitsandbytes.optim.AdEMAMix8bit")],
    "caption_extension": [("txt", ".txt"), (".caption", ".caption")],
    "vae": [("", None), ("C:/models/vae.pt", "C:/models/vae.pt")],
}


@pytest.mark.parametrize("name, raw, expected", [(n, r, e) for n, cases in LENIENT.items() for r, e in cases])
def test_args_values_are_read_the_way_they_were_meant(name, raw, expected):
    value, _ = OPTIONS[name].parse(raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name, raw", [("lr_warmup_steps", 1.5), ("lr_warmup_steps", -5), ("xformers", 2),
                                       ("max_train_steps", 10.5), ("learning_rate", "fast"),
                                       ("learning_rate", "nan"), ("resolution", [0, 512]),
                                       ("resolution", [512, 512, 512]), ("face_crop_aug_range", "4.0,2.0"),
                                       ("optimizer_args", ["x=1", "x=2"]), ("optimizer_args", [1]),
                                       ("train_batch_size", 0), ("caption_dropout_rate", 1.5),
                                       ("learning_rate", float("nan")), ("max_grad_norm", float("inf")),
                                       ("max_train_steps", float("inf")), ("lr_warmup_steps", float("inf")),
                                       ("lr_warmup_steps", "nan%"), ("face_crop_aug_range", [1.0, float("inf")]),
                                       ("optimizer_args", ["eps=1e999"]), ("seed", "-inf")])
def test_ambiguous_or_impossible_values_are_rejected(name, raw):
    with pytest.raises(BadValue):
        OPTIONS[name].parse(raw)


def test_notes_say_what_was_read(tmp_path):
    file = read_args_file(str(_write(tmp_path / "q.toml", """\
        learning_rate = "1e-6"
        use_8bit_adam = true
        caption_extention = "txt"
        lr_warmup_steps = 300.0
        """)))
    assert file.values["optimizer_type"] == "AdamW8bit" and file.values["caption_extension"] == ".txt"
    notes = "\n".join(file.report.notes)
    assert 'q.toml:1: note: key `learning_rate`: read the string "1e-6" as the number 1e-06' in notes
    assert 'q.toml:2: note: read `use_8bit_adam = true` as `optimizer_type = "AdamW8bit"`' in notes
    assert "q.toml:3: note: read `caption_extention` (old spelling) as `caption_extension`" in notes
    assert "q.toml:4: note: key `lr_warmup_steps`: read 300.0 as 300 steps" in notes


def test_cross_check_warnings_are_notes(tmp_path):
    loaded = load_train_config(["--v2", "--clip_skip", "2", "--zero_terminal_snr"])
    assert loaded.notes == ["command line: note: clip_skip with v2 is unusual (kohya warns)",
                            "command line: note: zero_terminal_snr is meant for v_parameterization; results may be "
                            "unexpected"]


def test_train_config_flat_names_round_trip():
    config = TrainConfig.from_flat({"learning_rate": 1e-5, "resolution": (768, 512), "v2": True})
    assert config.optimizer.learning_rate == 1e-5 and config.get("resolution") == (768, 512)
    assert config.model.v2 and config.to_flat()["v2"] is True
    assert TrainConfig.from_flat(config.to_flat()) == config
    assert set(config.to_flat()) == {n for n, o in OPTIONS.items() if not o.replaced_by}


@pytest.mark.parametrize("preset, expected", [
    ("acertainmodel_anime.toml", {"mixed_precision": "bf16", "stop_text_encoder_training": 300, "clip_skip": 2,
                                  "reg_data_dir": None, "prior_loss_weight": 1.0, "reg_mode": "self_wordfreq",
                                  "reg_ratio": 0.25}),
    ("acertainty_base.toml", {"stop_text_encoder_training": -1, "learning_rate": 1e-6, "save_precision": "float",
                              "noise_offset": None}),
    ("low_vram.toml", {"optimizer_type": "AdamW8bit", "gradient_checkpointing": True, "train_batch_size": 1,
                       "gradient_accumulation_steps": 4, "cache_latents_to_disk": True}),
])
def test_recipe_presets_load_and_say_what_they_promise(monkeypatch, tmp_path, preset, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "img" / "10_sks girl").mkdir(parents=True)
    loaded = load_train_config(["--config_file", str(PRESETS / preset)])
    assert {name: loaded.train.get(name) for name in expected} == expected
    assert all(not s.is_reg for s in loaded.datasets.subsets)  # the method trains without prior preservation
    assert loaded.notes == []


def test_dataset_example_loads(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for folder in ("train/img/10_sks girl", "train/reg/1_girl"):
        (tmp_path / folder).mkdir(parents=True)
    loaded = load_train_config(["--dataset_config", str(PRESETS / "dataset_example.toml")])
    (dataset,) = loaded.datasets.datasets
    assert dataset.kind == "dreambooth" and dataset.resolution == (512, 512) and dataset.batch_size == 2
    subject, reg = dataset.subsets
    assert (subject.num_repeats, subject.class_tokens, subject.keep_tokens, subject.caption_extension) == \
        (10, "sks girl", 1, ".txt")
    assert reg.is_reg and not subject.is_reg


def test_folder_mode_preset_loads_with_folders_from_the_command_line(tmp_path):
    for folder in ("img/10_sks dog", "reg/1_dog"):
        (tmp_path / folder).mkdir(parents=True)
    loaded = load_train_config(["--config_file", str(PRESETS / "dreambooth_folder_mode.toml"),
                                "--train_data_dir", str(tmp_path / "img"), "--reg_data_dir", str(tmp_path / "reg")])
    subsets = loaded.datasets.datasets[0].subsets
    assert [(s.num_repeats, s.class_tokens, s.is_reg) for s in subsets] == [(10, "sks dog", False), (1, "dog", True)]
    assert loaded.train.training.stop_text_encoder_training == 800 and loaded.notes == []


def test_presets_have_no_unknown_keys():
    for preset in ("acertainmodel_anime.toml", "acertainty_base.toml", "low_vram.toml", "quickstart.toml",
                   "dreambooth_folder_mode.toml"):
        assert read_args_file(str(PRESETS / preset)).report.problems == []


def test_what_sd_scripts_accepts_from_a_gui_file(tmp_path):
    """100% warmup, pyramid noise off, and the LoRA tab's neutral values that a full fine-tune can ignore."""
    file = read_args_file(str(_write(tmp_path / "gui.toml", """\
        lr_scheduler = "cosine"
        lr_warmup_steps = 1.0
        multires_noise_iterations = 0
        no_metadata = false
        network_multiplier = 1.0
        training_comment = ""
        base_weights = []
        """)))
    assert file.report.problems == []
    assert file.values["lr_warmup_steps"] == 1.0 and file.values["multires_noise_iterations"] is None
    assert file.report.notes == [
        f"{tmp_path / 'gui.toml'}:{line}: note: `{setting}` is a LoRA option (sd-scripts' train_network.py) at a value "
        "that changes nothing: ignored." for line, setting in [(4, "no_metadata = false"),
                                                                (5, "network_multiplier = 1.0"),
                                                                (6, 'training_comment = ""'), (7, "base_weights = []")]]


def test_lora_keys_that_do_something_are_still_refused(tmp_path):
    file = read_args_file(str(_write(tmp_path / "lora.toml", """\
        network_multiplier = 0.8
        no_metadata = true
        network_alpha = 1
        """)))
    assert [p.where.line for p in file.report.problems] == [1, 2, 3]
    assert all("is a LoRA option" in p.message for p in file.report.problems) and file.report.notes == []
