"""`train_certain.py --check`: the whole run checked and its plan printed, no weights loaded, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import train_certain
from library.quickstart import prepare_quickstart

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "presets" / "quickstart.toml"


@pytest.fixture
def quickstart(tmp_path) -> dict:
    base = prepare_quickstart(tmp_path / "qs")
    return {"root": tmp_path, "args": ["--check", "--config_file", str(PRESET), "--pretrained_model_name_or_path",
                                       str(base), "--train_data_dir", str(tmp_path / "qs" / "dataset" / "train"),
                                       "--output_dir", str(tmp_path / "out"), "--logging_dir", str(tmp_path / "logs")]}


def files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def test_the_check_prints_the_plan_without_loading_the_model_or_writing(quickstart, capsys, monkeypatch):
    import library.models.sd_model as sd_model

    def no_loading(*args, **kwargs):
        raise AssertionError("the check loaded the model's weights")

    monkeypatch.setattr(sd_model, "load_model", no_loading)
    before = files(quickstart["root"])
    assert train_certain.main(quickstart["args"]) == 0
    out = capsys.readouterr().out
    assert "13 images x 10 repeats = 130 samples" in out  # the dataset, with its buckets
    assert "steps: 132 (33 per epoch, 4 epoch(s)); 13 training image(s), 130 samples an epoch" in out
    assert "(tiny-world-sd1, sd1, v_prediction); no weights loaded" in out
    assert "regularization: self_wordfreq: 0.25 per training image, every 4 steps" in out
    assert out.rstrip().endswith("check passed: nothing was trained or written.")
    assert files(quickstart["root"]) == before  # no output_dir, logs, caches or word lists


@pytest.mark.parametrize("change, message", [
    ({"--pretrained_model_name_or_path": "{root}/half.safetensors"}, "half.safetensors: not a readable .safetensors "
                                                                    "file"),
    ({"--v2": None}, "v2 = true, but the weights are an SD1 model"),
    ({"--train_data_dir": "{root}/qs/dataset"}, "no training folders in"),
    ({"--reg_word_list": "{root}/missing.csv"}, "missing.csv"),
    ({"--validate_every_n_steps": "4", "--stop_on_overfit": None}, "stop_on_overfit = true needs a measure"),
])
def test_what_a_run_would_refuse_the_check_refuses(quickstart, change, message, capsys):
    root = quickstart["root"]
    shutil.copy(ROOT / "models" / "tiny-world-sd1.safetensors", root / "half.safetensors")
    with open(root / "half.safetensors", "r+b") as f:  # a partial download
        f.truncate(f.seek(0, 2) // 2)
    args = list(quickstart["args"])
    for flag, value in change.items():
        if flag in args:
            args[args.index(flag) + 1] = value.format(root=root)
        else:
            args += [flag] + ([value.format(root=root)] if value is not None else [])
    assert train_certain.main(args) == 2
    assert message in capsys.readouterr().err
