"""The command line: generated from the option table; CLI > args file > defaults."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from library.config import OPTIONS, ConfigError, build_parser, load_train_config, write_args_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def args_file(tmp_path):
    path = tmp_path / "args.toml"
    path.write_text(dedent("""\
        [training_arguments]
        xformers = true
        gradient_checkpointing = false
        max_train_steps = 3000
        use_8bit_adam = true

        [optimizer_arguments]
        learning_rate = 5e-6
        optimizer_args = ["weight_decay=0.01"]
        """), encoding="utf-8")
    return path


def test_defaults_without_any_input():
    train = load_train_config([]).train
    assert train.optimizer.learning_rate == 2e-6 and train.training.max_train_steps == 1600
    assert train.optimizer.optimizer_type == "AdamW" and train.model.max_token_length == 75
    assert train.training.xformers is False and train.dataset.caption_extension == ".caption"


def test_file_overrides_defaults_and_command_line_overrides_file(args_file):
    train = load_train_config(["--config_file", str(args_file), "--learning_rate", "1e-6"]).train
    assert train.optimizer.learning_rate == 1e-6  # CLI
    assert train.training.max_train_steps == 3000  # file
    assert train.training.train_batch_size == 1  # default


def test_order_of_flags_and_config_file_does_not_matter(args_file):
    before = load_train_config(["--max_train_steps", "10", "--config_file", str(args_file)]).train
    after = load_train_config(["--config_file", str(args_file), "--max_train_steps", "10"]).train
    assert before == after and before.training.max_train_steps == 10


def test_no_flag_turns_off_what_the_file_turned_on(args_file):
    train = load_train_config(["--config_file", str(args_file), "--no-xformers", "--gradient_checkpointing"]).train
    assert train.training.xformers is False and train.training.gradient_checkpointing is True


def test_command_line_lists_replace_file_lists(args_file):
    train = load_train_config(["--config_file", str(args_file), "--optimizer_args", "betas=(0.9,0.99)",
                               "decouple=True"]).train
    assert train.optimizer.optimizer_args == {"betas": (0.9, 0.99), "decouple": True}
    assert load_train_config(["--config_file", str(args_file), "--optimizer_args"]).train.optimizer.optimizer_args \
        == {}


def test_command_line_optimizer_type_wins_over_legacy_flag_in_file(args_file):
    assert load_train_config(["--config_file", str(args_file)]).train.optimizer.optimizer_type == "AdamW8bit"
    train = load_train_config(["--config_file", str(args_file), "--optimizer_type", "Lion"]).train
    assert train.optimizer.optimizer_type == "Lion"


def test_dataset_config_given_in_the_file_and_replaced_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, folder in (("one.toml", "first"), ("two.toml", "second")):
        (tmp_path / folder).mkdir()
        (tmp_path / name).write_text(f"[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = '{folder}'\n")
    (tmp_path / "args.toml").write_text(f"dataset_config = '{tmp_path / 'one.toml'}'\n")
    from_file = load_train_config(["--config_file", str(tmp_path / "args.toml")])
    assert from_file.datasets.subsets[0].image_dir == "first"
    overridden = load_train_config(["--config_file", str(tmp_path / "args.toml"),
                                    "--dataset_config", str(tmp_path / "two.toml")])
    assert overridden.datasets.subsets[0].image_dir == "second"


def test_command_line_args_are_the_fallback_of_the_dataset_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "d.toml").write_text("[[datasets]]\nresolution = 512\n[[datasets.subsets]]\nimage_dir = 'a'\n")
    (tmp_path / "args.toml").write_text(f"dataset_config = '{tmp_path / 'd.toml'}'\ntrain_batch_size = 2\n")
    loaded = load_train_config(["--config_file", str(tmp_path / "args.toml"), "--train_batch_size", "8"])
    assert loaded.datasets.datasets[0].batch_size == 8


@pytest.mark.parametrize("argv, expected", [
    (["--lr_warmup_steps", "10%"], 0.1), (["--lr_warmup_steps", "0.1"], 0.1), (["--lr_warmup_steps", "100"], 100),
])
def test_warmup_on_the_command_line_like_kohya(argv, expected):
    assert load_train_config([*argv, "--lr_scheduler", "cosine"]).train.optimizer.lr_warmup_steps == expected


def test_command_line_values_use_the_same_converters():
    train = load_train_config(["--resolution", "768,512", "--face_crop_aug_range", "2.0,4.0",
                               "--optimizer_type", "prodigy", "--caption_extension", "txt"]).train
    assert train.dataset.resolution == (768, 512) and train.dataset.face_crop_aug_range == (2.0, 4.0)
    assert train.optimizer.optimizer_type == "Prodigy" and train.dataset.caption_extension == ".txt"
    assert load_train_config(["--use_lion_optimizer"]).train.optimizer.optimizer_type == "Lion"


@pytest.mark.parametrize("argv, fragment", [
    (["--learnig_rate", "1e-6"], "command line: unknown option `--learnig_rate`. Did you mean `--learning_rate`?"),
    (["--learning-rate=1e-6"], "unknown option `--learning-rate`. Did you mean `--learning_rate`?"),
    (["--epochs", "10"], "unknown option `--epochs`. Did you mean `--max_train_epochs`?"),
    (["--network_dim", "32"], "`network_dim` is a LoRA option"),
    (["--batch_size", "4"], "`batch_size` is a dataset-config key, not an args option"),
    (["--xformers", "true"], "unexpected value `true`: true/false options take no value (write --flag or --no-flag)"),
    (["--mixed_precision", "fp32"], "command line: --mixed_precision: the string \"fp32\" is not one of \"no\", "
                                    "\"fp16\", \"bf16\". Did you mean \"no\"?"),
    (["--learning_rate"], "command line: argument --learning_rate: expected one argument (see --help)"),
    (["--use_8bit_adam", "--use_lion_optimizer"], "keys `use_8bit_adam` and `use_lion_optimizer` each choose"),
    (["--full_fp16"], "command line: key `full_fp16` needs `mixed_precision = \"fp16\"`"),
    (["--output_config"], "command line: key `output_config` needs `--config_file` naming the file to write"),
])
def test_command_line_errors(argv, fragment):
    with pytest.raises(ConfigError) as caught:
        load_train_config(argv)
    assert fragment in str(caught.value)


def test_parser_is_generated_from_the_table():
    parser = build_parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    for name, opt in OPTIONS.items():
        assert f"--{name}" in flags
        assert (f"--no-{name}" in flags) == opt.is_flag
    text = parser.format_help()
    assert "[optimizer_arguments]" in text and "--no-xformers" in text and "{no,fp16,bf16}" in text


def test_config_package_imports_no_heavy_libraries():
    code = "import sys, library.config; print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_output_config_writes_what_loads_back_the_same(tmp_path):
    out = tmp_path / "out"
    argv = ["--config_file", str(out), "--output_config", "--resolution", "768,512", "--optimizer_args", "betas=(0.9,0.99)", "weight_decay=0.01",
            "--learning_rate", "1e-5", "--xformers", "--lr_warmup_steps", "0.1", "--lr_scheduler", "cosine",
            "--wandb_api_key", "secret", "--max_token_length", "225", "--caption_prefix", 'say "hi"\\n']
    train = load_train_config(argv).train  # the file does not exist yet: with --output_config it is not read
    path = write_args_file(train, train.config.config_file)
    text = path.read_text()
    assert path.name == "out.toml" and "[optimizer_arguments]" in text and 'resolution = "768,512"' in text
    assert "secret" not in text and "max_train_steps" not in text  # defaults and the key are left out
    reloaded = load_train_config(["--config_file", str(path)]).train
    assert reloaded == dataclasses.replace(train, logging=dataclasses.replace(train.logging, wandb_api_key=None),
                                           config=dataclasses.replace(train.config, config_file=str(path),
                                                                      output_config=False))
    with pytest.raises(ConfigError, match="already exists"):
        write_args_file(train, path)
