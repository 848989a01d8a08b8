"""Every way a config can be wrong, and the message the user gets: file, line, key and the fix.

Each case is a small TOML as a user would paste it; the expected fragments are what the user must read
to fix it without opening the docs.
"""

from __future__ import annotations

import os
from textwrap import dedent

import pytest

from library.config import ConfigError, Problem, load_train_config
from library.config.errors import CLI, Where
from library.errors import UserError


def _errors(tmp_path, args: str | None = None, dataset: str | None = None, argv: tuple = ()) -> str:
    cli = list(argv)
    if args is not None:
        (tmp_path / "my.toml").write_text(dedent(args), encoding="utf-8")
        cli += ["--config_file", str(tmp_path / "my.toml")]
    if dataset is not None:
        (tmp_path / "data.toml").write_text(dedent(dataset), encoding="utf-8")
        cli += ["--dataset_config", str(tmp_path / "data.toml")]
    with pytest.raises(ConfigError) as caught:
        load_train_config(cli)
    return str(caught.value)


ARGS_FILE_CASES = {
    "misspelt key: line, table, nearest key and its section": (
        """\
        [training_arguments]
        max_train_steps = 1000
        learnig_rate = 1e-6
        """,
        ["my.toml:3: unknown key `learnig_rate` in [training_arguments]. Did you mean `learning_rate` "
         "(belongs in [optimizer_arguments] or any args section)?"]),
    "misspelt key at the top level": (
        "gradient_checkpoint = true\n",
        ["my.toml:1: unknown key `gradient_checkpoint` at the top level. Did you mean `gradient_checkpointing`"]),
    "wrong type says what was expected": (
        "max_train_steps = \"lots\"\n",
        ["my.toml:1: key `max_train_steps`: expected an integer, got the string \"lots\""]),
    "flag given a non-boolean string": (
        "\n\nxformers = \"yes\"\n",
        ["my.toml:3: key `xformers`: expected true or false (without quotes), got the string \"yes\""]),
    "a number where a string is expected": (
        "output_name = 5\n",
        ["my.toml:1: key `output_name`: expected a string in quotes, got the integer 5"]),
    "fp32 is not a mixed_precision value": (
        "[training_arguments]\nmixed_precision = \"fp32\"\n",
        ["my.toml:2: key `mixed_precision`: the string \"fp32\" is not one of \"no\", \"fp16\", \"bf16\". "
         "Did you mean \"no\"?"]),
    "max_token_length must be 75, 150 or 225": (
        "max_token_length = 100\n",
        ["my.toml:1: key `max_token_length`: the integer 100 is not one of 75, 150, 225"]),
    "unknown optimizer with did-you-mean": (
        "optimizer_type = \"adamw9bit\"\n",
        ["my.toml:1: key `optimizer_type`: unknown optimizer \"adamw9bit\". Did you mean \"AdamW8bit\"?"]),
    "unknown optimizer without a near name lists the names": (
        "optimizer_type = \"Sophia\"\n",
        ["key `optimizer_type`: unknown optimizer \"Sophia\": use one of AdamW, AdamW8bit,", "package.module.Class"]),
    "unknown scheduler with did-you-mean": (
        "lr_scheduler = \"cosine_restarts\"\n",
        ["key `lr_scheduler`", "Did you mean \"cosine_with_restarts\"?"]),
    "optimizer_args as one string shows the list form": (
        "[optimizer_arguments]\noptimizer_args = \"weight_decay=0.01 betas=0.9,0.999\"\n",
        ["my.toml:2: key `optimizer_args`: expected a list of \"key=value\" strings, got one string",
         "write [\"weight_decay=0.01\", \"betas=0.9,0.999\"]"]),
    "optimizer_args item split at a space (kohya_ss GUI)": (
        "optimizer_args = [\"weight_decay=0.01\", \"betas=(0.9,\", \"0.99)\"]\n",
        ["my.toml:1: key `optimizer_args`: \"betas=(0.9,\" and \"0.99)\" are one item split at a space",
         "write \"betas=(0.9,0.99)\""]),
    "optimizer_args item without =": (
        "optimizer_args = [\"weight_decay\"]\n",
        ["my.toml:1: key `optimizer_args`: item \"weight_decay\" is not \"key=value\""]),
    "optimizer_args value that is not a Python literal": (
        "lr_scheduler_args = [\"mode=min\"]\n",
        ["key `lr_scheduler_args`: in `mode=min` the value is not a Python literal; to pass the string, quote it: "
         "`mode='min'`"]),
    "Windows path mangled by TOML escapes": (
        "train_data_dir = \"D:\\train\\new\"\n",
        ["my.toml:1: key `train_data_dir`: the path", "contains a tab and a newline",
         "Write 'D:\\train\\new' (single quotes) or \"D:/train/new\" (forward slashes)"]),
    "ambiguous float warmup": (
        "lr_warmup_steps = 1.5\n",
        ["key `lr_warmup_steps`: expected a step count (integer, e.g. 100) or a fraction of all steps from 0 to 1"]),
    "resolution that is not a size": (
        "resolution = \"512x\"\n",
        ["key `resolution`: expected \"512\" or \"768,512\""]),
    "LoRA option gets a specific message": (
        "[additional_network_arguments]\nnetwork_module = \"networks.lora\"\nnetwork_dim = 32\n",
        ["my.toml:2: `network_module` is a LoRA option", "my.toml:3: `network_dim` is a LoRA option",
         "This trainer fine-tunes the whole model and has no LoRA"]),
    "LoRA keys that configure a network are refused even when empty": (
        "network_args = []\nnetwork_weights = \"\"\n",
        ["my.toml:1: `network_args` is a LoRA option", "my.toml:2: `network_weights` is a LoRA option"]),
    "nan and inf, which TOML can write": (
        "learning_rate = nan\nmax_grad_norm = inf\nmax_train_steps = -inf\nlr_warmup_steps = nan\n",
        ["my.toml:1: key `learning_rate`: expected a finite number, got the number nan: no option takes nan or inf",
         "my.toml:2: key `max_grad_norm`: expected a finite number, got the number inf",
         "my.toml:3: key `max_train_steps`: expected a finite number, got the number -inf",
         "my.toml:4: key `lr_warmup_steps`: expected a finite number"]),
    "an infinite number inside optimizer_args": (
        "optimizer_args = [\"weight_decay=1e999\"]\n",
        ["my.toml:1: key `optimizer_args`: in \"weight_decay=1e999\" the number is not finite"]),
    "LoRA learning rates point at the full fine-tuning ones": (
        "unet_lr = 1e-4\n",
        ["`unet_lr` is a LoRA option", "set `learning_rate` (U-Net) and `learning_rate_te` (text encoder)"]),
    "dataset-config key in an args file": (
        "[dataset_arguments]\nbatch_size = 4\n",
        ["my.toml:2: `batch_size` is a dataset-config key, not an args option: it belongs in [general] or "
         "[[datasets]] of --dataset_config; in an args file it is called `train_batch_size`"]),
    "table nested two levels (kohya drops it silently)": (
        "[general_args]\nseed = 1\n[general_args.dataset_args]\nresolution = \"512\"\n",
        ["my.toml:3: table [general_args.dataset_args] is nested two levels deep", "Move them into [general_args]"]),
    "same key in two tables": (
        "[model_arguments]\nv2 = false\n\n[training_arguments]\nv2 = true\n",
        ["my.toml:5: key `v2` is set twice: in [model_arguments] (line 2) and in [training_arguments]",
         "kohya silently uses the last one"]),
    "old and new spelling of caption_extension": (
        "caption_extension = \".txt\"\ncaption_extention = \".caption\"\n",
        ["my.toml:2: key `caption_extention` (old spelling) and `caption_extension` are both set"]),
    "legacy optimizer flag and optimizer_type": (
        "use_8bit_adam = true\noptimizer_type = \"Lion\"\n",
        ["my.toml:1: keys `use_8bit_adam` and `optimizer_type` each choose an optimizer; keep one"]),
    "a dataset config given as --config_file": (
        "[general]\nresolution = 512\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = \"x\"\n",
        ["my.toml:1: `general` belongs to a dataset config", "pass this file with --dataset_config"]),
    "cross-check: adaptive_noise_scale needs noise_offset": (
        "adaptive_noise_scale = 0.01\n",
        ["my.toml:1: key `adaptive_noise_scale` needs `noise_offset` as well",
         "now adaptive_noise_scale = 0.01, noise_offset = None"]),
    "cross-check: full_fp16 needs fp16": (
        "mixed_precision = \"bf16\"\nfull_fp16 = true\n",
        ["my.toml:2: key `full_fp16` needs `mixed_precision = \"fp16\"` (now full_fp16 = true, "
         "mixed_precision = \"bf16\")"]),
    "cross-check: v_pred_like_loss excludes v_parameterization": (
        "v_parameterization = true\nv_pred_like_loss = 0.1\n",
        ["my.toml:2: key `v_pred_like_loss` cannot be combined with `v_parameterization = true`"]),
    "cross-check: scale_v_pred_loss_like_noise_pred needs v_parameterization": (
        "scale_v_pred_loss_like_noise_pred = true\n",
        ["my.toml:1: key `scale_v_pred_loss_like_noise_pred` works only with `v_parameterization = true`"]),
    "cross-check: warmup with the constant scheduler": (
        "lr_scheduler = \"constant\"\nlr_warmup_steps = 100\n",
        ["my.toml:2: key `lr_warmup_steps` has no effect with this `lr_scheduler`", "constant_with_warmup"]),
    "cross-check: cache_latents with color_aug": (
        "cache_latents = true\ncolor_aug = true\n",
        ["my.toml:1: `cache_latents` cannot be combined with `color_aug`"]),
}

SYNTAX_CASES = {
    "unquoted string": ("mixed_precision = fp16\n", ["my.toml:1:19: TOML syntax error: Invalid value.",
                                                     "Strings need quotes: \"fp16\"."]),
    "Python booleans": ("\n[training_arguments]\nxformers = True\n",
                        ["my.toml:3:12: TOML syntax error", "TOML booleans are lowercase: true."]),
    "None has no TOML form": ("seed = None\n", ["my.toml:1:8:", "TOML has no null: delete the line"]),
    "Windows path with \\U escape": ("vae = \"C:\\Users\\me\\vae.pt\"\n",
                                    ["my.toml:1:", "write Windows paths in 'single quotes'"]),
    "duplicate key (tomllib gives no line; we find it)": (
        "seed = 1\nlearning_rate = 1e-6\nseed = 2", ["my.toml:3: TOML syntax error: Cannot overwrite a value.",
                                                     "A key or table is given twice; keep one.\n"]),
    "YAML-style colon": ("learning_rate: 1e-6\n", ["my.toml:1:14:", "TOML writes `key = value`, not `key: value`."]),
    "comma list without brackets": ("resolution = 512,512\n", ["my.toml:1:", "a list needs brackets: [512,512]"]),
    "unterminated array": ("seed = 1\noptimizer_args = [\"a=1\",\n\n",
                           ["my.toml:2: TOML syntax error", "never closed: check for a missing `]`"]),
}


@pytest.mark.parametrize("text, expected", ARGS_FILE_CASES.values(), ids=ARGS_FILE_CASES.keys())
def test_args_file_errors(tmp_path, text, expected):
    message = _errors(tmp_path, args=text)
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize("text, expected", SYNTAX_CASES.values(), ids=SYNTAX_CASES.keys())
def test_toml_syntax_errors_have_position_and_hint(tmp_path, text, expected):
    message = _errors(tmp_path, args=text)
    for fragment in expected:
        assert fragment in message


ONE_DATASET = "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = \"a\"\n"

DATASET_CASES = {
    "subset key in [general]": (
        "[general]\nresolution = 512\nimage_dir = \"img\"\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = \"a\"\n",
        ["data.toml:3: key `image_dir` is not allowed in [general]: it belongs in [[datasets.subsets]]"]),
    "is_reg in [general]": (
        "[general]\nis_reg = true\n" + ONE_DATASET,
        ["data.toml:2: key `is_reg` is not allowed in [general]: it belongs in [[datasets.subsets]]"]),
    "dataset key in a subset": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = \"a\"\nbatch_size = 2\n",
        ["data.toml:5: key `batch_size` is not allowed in [[datasets.subsets]]: it belongs in [general] or "
         "[[datasets]]"]),
    "single-bracket [datasets]": (
        "[datasets]\nresolution = 512\n",
        ["data.toml:1: write [[datasets]] with double brackets"]),
    "single-bracket [datasets.subsets]": (
        "[[datasets]]\nresolution = 512\n[datasets.subsets]\nimage_dir = \"a\"\n",
        ["data.toml:3: write [[datasets.subsets]] with double brackets"]),
    "args file with a [[datasets]] entry: its table gets the args-file hint": (
        "[settings]\nlearning_rate = 1e-6\nmax_train_steps = 100\n" + ONE_DATASET,
        ["data.toml:1: unknown table [settings]: a dataset config holds only [general] and [[datasets]]",
         "This looks like an args file: pass it with --config_file."]),
    "duplicate key in a dataset config: the hint names [[datasets]]": (
        "[[datasets]]\nresolution = 512\nresolution = 768\n",
        ["data.toml:3:", "TOML syntax error", "keep one (each dataset starts with its own [[datasets]])"]),
    "nan in a dataset config": (
        "[general]\ncaption_dropout_rate = nan\n" + ONE_DATASET,
        ["data.toml:2: key `caption_dropout_rate`: expected a finite number, got the number nan"]),
    "every subset skipped by num_repeats = 0": (
        "[general]\nnum_repeats = 0\n" + ONE_DATASET,
        ["data.toml:3: every subset of this dataset has num_repeats = 0, so it has no images"]),
    "resolution as a string": (
        "[[datasets]]\nresolution = \"512,512\"\n[[datasets.subsets]]\nimage_dir = \"a\"\n",
        ["data.toml:2: key `resolution`: expected 512 or [768, 512] (width, height) without quotes",
         "write resolution = 512"]),
    "non-square resolution as a string": (
        "[general]\nresolution = \"768,512\"\n" + ONE_DATASET.replace("resolution = 512\n", ""),
        ["data.toml:2: key `resolution`", "write resolution = [768, 512]"]),
    "bool as a string": (
        "[general]\nenable_bucket = \"true\"\n" + ONE_DATASET,
        ["data.toml:2: key `enable_bucket`: expected true or false (without quotes), got the string \"true\""]),
    "args option in a dataset config": (
        "[general]\nlearning_rate = 1e-6\n" + ONE_DATASET,
        ["data.toml:2: `learning_rate` is an args option, not a dataset-config key: put it in the --config_file"]),
    "args name of a dataset key": (
        "[general]\ntrain_batch_size = 2\n" + ONE_DATASET,
        ["in a dataset config the same setting is called `batch_size`"]),
    "old spelling of a key in a dataset config (kohya's schema never had it)": (
        "[general]\ncaption_extention = \".txt\"\n" + ONE_DATASET,
        ["data.toml:2: unknown key `caption_extention` in [general]. Did you mean `caption_extension`?"]),
    "misspelt subset key": (
        "[[datasets]]\nresolution = 512\n  [[datasets.subsets]]\n  image_dir = \"a\"\n  num_repeat = 10\n",
        ["data.toml:5: unknown key `num_repeat` in [[datasets.subsets]]. Did you mean `num_repeats`"]),
    "mixed DreamBooth and fine-tuning subsets": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = \"a\"\n"
        "[[datasets.subsets]]\nmetadata_file = \"meta.json\"\n",
        ["data.toml:1: this dataset mixes fine-tuning subsets (with metadata_file) and DreamBooth subsets",
         "split them into separate [[datasets]] entries"]),
    "DreamBooth subset without image_dir": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nnum_repeats = 3\n",
        ["data.toml:3: this subset has no `image_dir`"]),
    "DreamBooth-only key in a fine-tuning dataset": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nmetadata_file = \"m.json\"\nis_reg = true\n",
        ["data.toml:5: key `is_reg` is for DreamBooth subsets; this dataset is fine-tuning"]),
    "dataset without subsets": (
        "[[datasets]]\nresolution = 512\n",
        ["data.toml:1: this [[datasets]] entry has no [[datasets.subsets]]"]),
    "LoRA key in a dataset config": (
        "[general]\nnetwork_multiplier = 1.0\n" + ONE_DATASET,
        ["data.toml:2: `network_multiplier` is a LoRA option"]),
    "no resolution anywhere": (
        "[[datasets]]\n[[datasets.subsets]]\nimage_dir = \"a\"\n",
        ["data.toml:1: no `resolution` for this dataset"]),
    "negative num_repeats": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = \"a\"\nnum_repeats = -1\n",
        ["data.toml:5: key `num_repeats`: must be at least 0, got -1"]),
    "cache_latents (args) with random_crop in a subset": (
        "[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = \"a\"\nrandom_crop = true\n",
        ["data.toml:3: `cache_latents` cannot be combined with `random_crop`", "(subsets: a)"]),
}


@pytest.mark.parametrize("text, expected", DATASET_CASES.values(), ids=DATASET_CASES.keys())
def test_dataset_config_errors(tmp_path, text, expected):
    argv = ("--cache_latents",) if "cache_latents" in expected[0] else ()
    message = _errors(tmp_path, dataset=text, argv=argv)
    for fragment in expected:
        assert fragment in message


def test_all_problems_of_a_file_are_reported_at_once(tmp_path):
    message = _errors(tmp_path, args="""\
        [training_arguments]
        learnig_rate = 1e-6
        mixed_precision = "fp32"
        network_dim = 16
        max_train_steps = "many"
        """)
    assert message.startswith("4 problems in the training config:")
    assert [line.split(":")[1] for line in message.splitlines()[1:]] == ["2", "3", "4", "5"]


def test_problems_of_file_and_command_line_come_together(tmp_path):
    message = _errors(tmp_path, args="learnig_rate = 1e-6\n", argv=("--max_train_steps", "x"))
    assert "my.toml:1: unknown key `learnig_rate`" in message
    assert "command line: --max_train_steps: expected an integer, got the string \"x\"" in message


def test_missing_args_file_names_the_toml_it_looked_for(tmp_path):
    message = _errors(tmp_path, argv=("--config_file", str(tmp_path / "nothere")))
    assert "nothere.toml: file not found (given as --config_file)" in message


def test_dataset_config_must_be_toml_or_json(tmp_path):
    (tmp_path / "data.yaml").write_text("general: {}\n")
    message = _errors(tmp_path, argv=("--dataset_config", str(tmp_path / "data.yaml")))
    assert "data.yaml: a dataset config must be a .toml or .json file" in message


def test_json_syntax_error_has_line_and_column(tmp_path):
    (tmp_path / "data.json").write_text('{"general": {\n  "resolution": 512,\n}}\n')
    message = _errors(tmp_path, argv=("--dataset_config", str(tmp_path / "data.json")))
    assert "data.json:3:1: JSON syntax error" in message


def test_config_error_lists_every_problem_in_order_with_its_place():
    problems = [Problem(Where("my.toml", 3), "first"), Problem(Where("data.toml", 7, 2), "second"),
                Problem(CLI, "third")]
    error = ConfigError(problems)
    assert isinstance(error, UserError) and error.problems == problems
    assert str(error) == ("3 problems in the training config:\nmy.toml:3: first\ndata.toml:7:2: second\n"
                          "command line: third")
    assert str(ConfigError(problems[:1])) == "my.toml:3: first"  # one problem: no count line


def test_missing_dataset_config_names_where_it_was_set(tmp_path):
    message = _errors(tmp_path, args="[dataset_arguments]\ndataset_config = 'nowhere/data.toml'\n")
    assert "my.toml:2: key `dataset_config`: file not found: nowhere/data.toml" in message


def test_file_that_is_not_utf8(tmp_path):
    (tmp_path / "my.toml").write_bytes(b"output_name = '\xff\xfe'\n")
    message = _errors(tmp_path, argv=("--config_file", str(tmp_path / "my.toml")))
    assert "my.toml: not UTF-8 text" in message and "save the file as UTF-8" in message


def test_gui_settings_json_given_as_args_file(tmp_path):
    (tmp_path / "my_lora.json").write_text('{"max_resolution": "512,512", "epoch": 10}')
    message = _errors(tmp_path, argv=("--config_file", str(tmp_path / "my_lora.json")))
    assert "my_lora.json: --config_file takes a TOML args file" in message
    assert "use the config_*.toml the GUI writes into the output folder" in message


@pytest.mark.parametrize("text, holds", [("[1, 2]", "a list"), ('"x"', "a string"), ("null", "null")])
def test_json_dataset_config_must_be_an_object(tmp_path, text, holds):
    (tmp_path / "data.json").write_text(text)
    message = _errors(tmp_path, argv=("--dataset_config", str(tmp_path / "data.json")))
    assert message == (f"{tmp_path / 'data.json'}: the top level must be a JSON object with `general`/`datasets`, "
                       f'like {{"general": {{...}}, "datasets": [{{"subsets": [...]}}]}}; this file holds {holds}')


def test_unknown_flag_swallows_its_value():
    with pytest.raises(ConfigError) as caught:
        load_train_config(["--learnig_rate", "1e-6", "--optimizer_argz", "a=1", "b=2", "--seed", "-1"])
    assert [p.message for p in caught.value.problems] == [
        "unknown option `--learnig_rate`. Did you mean `--learning_rate`?",
        "unknown option `--optimizer_argz`. Did you mean `--optimizer_args`?"]


def test_stray_value_after_a_known_flag_is_still_reported():
    with pytest.raises(ConfigError) as caught:
        load_train_config(["--learnig_rate", "1e-6", "--xformers", "true"])
    assert [p.message.split(":")[0] for p in caught.value.problems] == [
        "unknown option `--learnig_rate`. Did you mean `--learning_rate`?", "unexpected value `true`"]


def test_gui_key_is_a_note_in_a_file_but_an_unknown_flag_on_the_command_line(tmp_path):
    message = _errors(tmp_path, args="train_inpainting = false\n", argv=("--train_inpainting",))
    assert message == "command line: unknown option `--train_inpainting` (see --help)"


def test_flat_args_file_given_as_dataset_config_is_one_problem(tmp_path):
    message = _errors(tmp_path, dataset="""\
        # my settings
        learning_rate = 1e-6
        max_train_steps = 100
        xformers = true
        resolution = "512,512"
        mixed_precision = "fp16"
        output_dir = "out"
        """).replace(f"{tmp_path}{os.sep}", "")
    first, *details = message.splitlines()
    assert first == ("data.toml:2: this looks like an args file (it sets `learning_rate`, `max_train_steps`, "
                     "`xformers`, ...), not a dataset config: pass it with --config_file. Read as a dataset config "
                     "it has 7 problems:")
    assert details[0].startswith("    data.toml:2: `learning_rate` is an args option") and len(details) == 4
    assert details[-1] == "    ... and 4 more"


def test_sectioned_args_file_given_as_dataset_config_is_one_problem(tmp_path):
    message = _errors(tmp_path, dataset="[settings]\nlearning_rate = 1e-6\nmax_train_steps = 100\n")
    message = message.replace(f"{tmp_path}{os.sep}", "")
    assert message.startswith("data.toml:2: this looks like an args file (it sets `learning_rate`, "
                              "`max_train_steps`), not a dataset config: pass it with --config_file.")
    assert "problems in the training config" not in message
