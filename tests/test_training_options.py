"""Options around the loop: nothing is ignored silently, and each option group does what kohya users expect."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import train_certain
from field_reads import field_reads
from library.config import OPTIONS, load_train_config
from library.config.dataset_spec import ARGS_NAME, DATASET_KEYS
from library.models.sd_model import load_model
from library.training.support import BUILT_IN, DATASET_SOURCES, UNSUPPORTED, unsupported_notes

ROOT = Path(__file__).resolve().parents[1]


def test_every_option_is_used_or_has_a_stated_reason():
    """An option counts as used where product code outside the config package reads its parsed field: its
    section's field (`train.training.seed`, `reg.reg_ratio`), or the subset field it fills (`subset.flip_aug`).
    Its name in a comment, a docstring or a string does not count: such an option would be ignored silently."""
    scripts = [ROOT / name for name in ("train_certain.py", "gen_reg_images.py", "similarity.py")]
    library = sorted(ROOT.joinpath("library").rglob("*.py"))
    product = [p for p in library if "config" not in p.relative_to(ROOT).parts] + scripts
    found = field_reads(product, library + scripts)
    key_of = {args_name: key for key, args_name in ARGS_NAME.items()}

    def read(name: str) -> bool:
        section, field = OPTIONS[name].attr
        key = key_of.get(name, name)
        return found.read(found.field_type("TrainConfig", section), field) or (
            key in DATASET_KEYS and (found.read("SubsetSpec", key) or found.read("DatasetSpec", key)))

    listed = {**UNSUPPORTED, **BUILT_IN}  # old names (`replaced_by`) become the option they stand for
    unused = [name for name, option in OPTIONS.items()
              if not option.replaced_by and name not in listed and name not in DATASET_SOURCES and not read(name)]
    assert unused == []
    assert [name for name in listed if read(name)] == []  # a reason saying "not used" would mislead
    assert not set(UNSUPPORTED) & set(BUILT_IN)


def test_left_out_options_are_named_once_when_set(tmp_path):
    loaded = load_train_config(["--huggingface_repo_id", "me/model", "--deepspeed", "--wandb_run_name", "x"])
    notes = unsupported_notes(loaded.train)
    assert len(notes) == 3
    assert any(n.startswith("`huggingface_repo_id` is set but not used") and "offline" in n for n in notes)
    assert unsupported_notes(load_train_config([]).train) == []


def test_debug_dataset_shows_batches_without_loading_a_model(tmp_path, train_args, capsys):
    args = train_args(tmp_path, "--debug_dataset", "--pretrained_model_name_or_path", str(tmp_path / "absent.ckpt"))
    assert train_certain.main(args) == 0
    log = capsys.readouterr().err
    assert "debug_dataset: the first batches" in log and "sks girl" in log
    assert not (tmp_path / "last.safetensors").exists()


def test_progress_on_stdout_and_log_file(tmp_path, train_args, capsys):
    log_file = tmp_path / "train.log"
    assert train_certain.main(train_args(tmp_path, "--max_train_steps", "2", "--progress_stdout",
                                         "--console_log_file", str(log_file))) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["step"] for e in lines if e["event"] == "step"] == [1, 2]
    assert "--- options that differ from the defaults ---" in log_file.read_text()


def test_text_encoder_is_trained_for_dreambooth_folders_unless_told_not_to(tmp_path, train_args, tiny_sd1):
    base = load_model(tiny_sd1).text_encoder.state_dict()
    key = "final_layer_norm.weight"
    assert train_certain.main(train_args(tmp_path / "a", "--max_train_steps", "2")) == 0
    trained = load_model(tmp_path / "a" / "last.safetensors").text_encoder.state_dict()
    assert not torch.equal(trained[key], base[key])  # train_db.py's default: U-Net and text encoder
    assert train_certain.main(train_args(tmp_path / "b", "--max_train_steps", "2",
                                         "--stop_text_encoder_training", "-1")) == 0
    frozen = load_model(tmp_path / "b" / "last.safetensors").text_encoder.state_dict()
    assert all(torch.equal(frozen[k], v) for k, v in base.items())


def test_step_saves_keep_kohyas_window(tmp_path, train_args):
    out = tmp_path / "out"
    assert train_certain.main(train_args(out, "--max_train_steps", "5", "--save_every_n_steps", "1",
                                         "--save_last_n_steps", "2", "--train_batch_size", "1")) == 0
    kept = sorted(p.name for p in out.glob("at-step*.safetensors"))
    assert kept == ["at-step00000002.safetensors", "at-step00000003.safetensors", "at-step00000004.safetensors"]
    assert (out / "last.safetensors").is_file()


def test_epoch_saves_and_output_name(tmp_path, train_args):
    out = tmp_path / "out"
    assert train_certain.main(train_args(out, "--max_train_epochs", "2", "--save_every_n_epochs", "1",
                                         "--output_name", "mine", "--train_batch_size", "16",
                                         "--save_model_as", "ckpt")) == 0
    assert (out / "mine-000001.ckpt").is_file() and (out / "mine.ckpt").is_file()
    assert not (out / "mine-000002.ckpt").exists()  # the last epoch is the final save, as kohya


def test_captions_longer_than_max_token_length_are_named_at_start(tmp_path, train_args, capsys):
    from library.sample_data import write_sample_dataset

    data = write_sample_dataset(tmp_path / "data", seed=0)
    long_caption = ", ".join(f"tag{i}" for i in range(40))  # about 120 tokens: past 75, within 225
    (data.train_dir / "0000.txt").write_text(long_caption)
    args = train_args(tmp_path / "out", "--max_train_steps", "1")
    args[args.index("--train_data_dir") + 1] = str(data.train_dir.parent)
    assert train_certain.main(args) == 0
    assert "1 caption(s) are longer than max_token_length = 75" in capsys.readouterr().err
    assert train_certain.main(args + ["--max_token_length", "225"]) == 0
    assert "longer than max_token_length" not in capsys.readouterr().err


def test_a_sample_sampler_we_lack_is_noted_in_the_run_log():
    """The note goes through the run's log function, so console_log_file keeps it too."""
    from library.training.run import sample_images_sampler

    lines: list[str] = []
    assert sample_images_sampler("pndm", lines.append) == "euler_a"
    assert lines == ["note: sample_sampler `pndm` is not available; sample images use Euler a."]
    assert sample_images_sampler("Euler a", lines.append) == "euler_a" and len(lines) == 1


def test_the_text_encoder_is_frozen_from_stop_text_encoder_training_on(tmp_path, train_args):
    """Its flags are set at the start and switched once at the step, not reset every step."""
    from library.config import load_train_config
    from library.plugins import Callback
    from library.training.run import run_training

    class TextEncoderFlags(Callback):
        seen: list[tuple[int, bool, bool]] = []

        def on_step_end(self, ctx, result):
            with ctx.sampling_model() as model:
                te = model.text_encoder
                self.seen.append((result.step, te.training, any(p.requires_grad for p in te.parameters())))

    record = TextEncoderFlags()
    loaded = load_train_config(train_args(tmp_path, "--max_train_steps", "3", "--stop_text_encoder_training", "2"))
    assert run_training(loaded, callbacks=[record]) == 0
    assert record.seen == [(1, True, True), (2, False, False), (3, False, False)]


def test_schedule_free_saves_its_eval_weights_and_keeps_the_training_ones_in_the_state(tmp_path, train_args):
    """Schedule-free optimizers hold two sets of weights: sampling and checkpoints use the eval ones, the resumable
    state the ones training goes on from (the two differ after a few steps)."""
    from safetensors.torch import load_file

    assert train_certain.main(train_args(tmp_path, "--max_train_steps", "3", "--optimizer_type", "AdamWScheduleFree",
                                         "--save_state", "--stop_text_encoder_training", "-1")) == 0
    saved = load_model(tmp_path / "last.safetensors").unet.state_dict()
    training = load_file(str(tmp_path / "last-state" / "unet.safetensors"))
    assert saved.keys() == training.keys()
    differ = [k for k in saved if not torch.equal(saved[k], training[k])]
    assert len(differ) > 0.9 * len(saved)
