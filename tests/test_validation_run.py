"""Validation loss, the drift meter and the overfit rule in real runs of the tiny world base model.

The overfitting run is the DreamBooth case the rule is for: three `sks girl` pictures (the star the base has never
seen) trained at a high learning rate, six others held out. Their validation loss first falls (the star is learned)
and then rises (the three pictures are memorized).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import similarity
import train_certain
from library.config import load_train_config
from library.data.dataset import build_training_data
from library.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "models" / "tiny-world-sd1.safetensors"
TOLERANCE = 0.02


def dataset_toml(folder: Path, train: Path, validation: Path | None) -> Path:
    held = f'validation_dir = "{validation.as_posix()}"\n' if validation else ""
    path = folder / "dataset.toml"
    path.write_text(f'[general]\ncaption_extension = ".txt"\n[[datasets]]\nresolution = 64\nbatch_size = 2\n'
                    f'enable_bucket = true\nmin_bucket_reso = 32\nmax_bucket_reso = 128\nbucket_reso_steps = 32\n{held}'
                    f'  [[datasets.subsets]]\n  image_dir = "{train.as_posix()}"\n', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sks_split(tmp_path_factory, sample_dataset) -> Path:
    """Three captioned `sks girl` pictures to train on and six to hold out, with the dataset config."""
    root = tmp_path_factory.mktemp("sks")
    images = sorted(p for p in sample_dataset.train_dir.glob("*.png") if p.with_suffix(".txt").exists())
    for name, chosen in (("train", images[:3]), ("val", images[3:9])):
        (root / name).mkdir()
        for image in chosen:
            shutil.copy(image, root / name)
            shutil.copy(image.with_suffix(".txt"), root / name)
    dataset_toml(root, root / "train", root / "val")
    return root


def world_args(out: Path, dataset_config: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(WORLD), "--dataset_config", str(dataset_config),
            "--output_dir", str(out), "--seed", "1", "--max_data_loader_n_workers", "0", "--cache_latents",
            "--clip_skip", "2", "--stop_text_encoder_training", "-1", "--progress_jsonl", str(out / "progress.jsonl"),
            *extra]


def events(out: Path, name: str) -> list[dict]:
    lines = (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, sks_split) -> Path:
    out = tmp_path_factory.mktemp("overfit")
    code = train_certain.main(world_args(out, sks_split / "dataset.toml", "--max_train_steps", "80",
                                         "--learning_rate", "3e-4", "--save_every_n_steps", "8",
                                         "--validate_every_n_steps", "4", "--overfit_patience", "2",
                                         "--overfit_tolerance", str(TOLERANCE), "--stop_on_overfit"))
    assert code == 0
    return out


def test_an_overfitting_run_is_detected_its_checkpoint_chosen_and_the_run_stopped(overfit_run):
    summary = json.loads((overfit_run / "checkpoints.json").read_text(encoding="utf-8"))
    losses = {e["step"]: e["validation_loss"] for e in summary["evaluations"]}
    steps = sorted(losses)
    best = min(losses.values())
    assert best < losses[0] and losses[steps[-1]] > best * (1 + TOLERANCE)  # it learned, then overfit
    onset = summary["overfitting"]
    began, detected = onset["began_step"], onset["detected_step"]
    streak = [s for s in steps if began <= s <= detected]
    assert len(streak) == 2  # overfit_patience
    for s in streak:  # each is above the minimum so far by more than the tolerance, and the one before is not
        assert losses[s] > min(losses[t] for t in steps if t <= s) * (1 + TOLERANCE)
    before = max(t for t in steps if t < began)
    assert losses[before] <= min(losses[t] for t in steps if t <= before) * (1 + TOLERANCE)
    saved = [c["step"] for c in summary["checkpoints"]]
    chosen = [c for c in summary["checkpoints"] if c["chosen"]]
    assert [c["step"] for c in chosen] == [max(s for s in saved if s < began)]
    assert summary["chosen"]["path"] == chosen[0]["path"] and f"step {began}" in summary["chosen"]["reason"]
    assert (overfit_run / chosen[0]["path"]).exists()
    # stop_on_overfit: the run ended cleanly at the detection, with its final save
    assert events(overfit_run, "step")[-1]["step"] == detected < 80
    assert events(overfit_run, "finish")[0]["step"] == detected
    assert (overfit_run / "last.safetensors").exists() and saved[-1] == detected
    assert "✓" in (overfit_run / "report.md").read_text(encoding="utf-8")
    assert (overfit_run / "report.png").stat().st_size > 10_000


def test_the_drift_meter_starts_at_zero_and_grows_along_the_overfitting_run(overfit_run):
    summary = json.loads((overfit_run / "checkpoints.json").read_text(encoding="utf-8"))
    drift = [e["drift"] for e in summary["evaluations"]]
    assert drift[0] == 0.0  # the base against its own cached predictions
    assert 0 < drift[1] < drift[-1]
    moved = summary["evaluations"][-1]["most_moved"]
    assert len(moved) == 5 and {m["word"] for m in moved} <= set(summary["drift_words"])
    assert [e["scalars"]["drift"] for e in events(overfit_run, "validation")] == drift  # JSON lines (TensorBoard)
    similarities = [c["similarity"] for c in summary["checkpoints"]]
    assert similarities[-1] < similarities[0] < 100


def test_the_behaviour_command_measures_what_the_drift_meter_measured(overfit_run, tmp_path, capsys):
    summary = json.loads((overfit_run / "checkpoints.json").read_text(encoding="utf-8"))
    words = tmp_path / "words.txt"
    words.write_text("\n".join(summary["drift_words"]) + "\n", encoding="utf-8")
    last = summary["checkpoints"][-1]
    report = tmp_path / "behaviour.json"
    code = similarity.main([str(WORLD), str(WORLD), str(overfit_run / last["path"]), "--behaviour", "--words",
                            str(words), "--size", "64", "--clip-skip", "2", "--json", str(report)])
    assert code == 0
    itself, trained = json.loads(report.read_text(encoding="utf-8"))["models"]
    assert itself["mean"] == 0.0 and set(itself["per_word"]) == set(summary["drift_words"])
    assert trained["mean"] == pytest.approx(last["drift"], rel=1e-4)
    assert "drift" in capsys.readouterr().out


def test_validation_loss_is_the_same_each_time_on_the_same_weights(tmp_path, sks_split, monkeypatch):
    """With learning rate 0 the weights never change, so every evaluation must give the very same numbers; with
    cache_latents the held-out images are encoded once, before training, like the training images."""
    import library.training.loop as loop

    encoded = []
    monkeypatch.setattr(loop, "encode_latents", lambda *args: encoded.append(1) or pytest.fail("encoded in the loop"))
    code = train_certain.main(world_args(tmp_path, sks_split / "dataset.toml", "--max_train_steps", "3",
                                         "--learning_rate", "0", "--validate_every_n_steps", "1"))
    assert code == 0
    summary = json.loads((tmp_path / "checkpoints.json").read_text(encoding="utf-8"))
    assert [e["step"] for e in summary["evaluations"]] == [0, 1, 2, 3]
    assert len({e["validation_loss"] for e in summary["evaluations"]}) == 1
    assert {e["drift"] for e in summary["evaluations"]} == {0.0}
    assert summary["checkpoints"][-1]["similarity"] == pytest.approx(100.0)
    assert encoded == []


def test_validation_dir_images_are_held_out_and_a_missing_one_is_named(tmp_path, sks_split):
    loaded = load_train_config(["--dataset_config", str(sks_split / "dataset.toml")])
    data = build_training_data(loaded.datasets, loaded.train)
    assert {p.parent.name for p in (i.path for i in data.items)} == {"train"}
    assert sorted(i.path.name for i in data.held_out) == sorted(p.name for p in (sks_split / "val").glob("*.png"))
    assert len(data.validation_data().epoch_plan(0, 0)) == 3  # six pictures, batch 2
    missing = dataset_toml(tmp_path, sks_split / "train", tmp_path / "nowhere")
    loaded = load_train_config(["--dataset_config", str(missing)])
    with pytest.raises(UserError, match="validation_dir .*nowhere.*folder not found"):
        build_training_data(loaded.datasets, loaded.train)


def test_stop_on_overfit_without_a_measure_is_refused_before_the_model_loads(tmp_path, sks_split, capsys):
    config = dataset_toml(tmp_path, sks_split / "train", None)
    args = world_args(tmp_path / "out", config, "--stop_on_overfit")
    code = train_certain.main([str(tmp_path / "no-model.safetensors") if a == str(WORLD) else a for a in args])
    assert code == 2
    assert "stop_on_overfit = true needs a measure" in capsys.readouterr().err


def test_measuring_does_not_change_the_training(tmp_path, train_args):
    """Evaluating every step (drift, similarity, the sampling model's entry and exit) leaves the step losses and the
    final weights exactly as a run that measures only at its one save."""
    from safetensors.torch import load_file

    plain, measured = tmp_path / "plain", tmp_path / "measured"
    assert train_certain.main(train_args(plain, "--max_train_steps", "4", "--shuffle_caption")) == 0
    assert train_certain.main(train_args(measured, "--max_train_steps", "4", "--shuffle_caption",
                                         "--validate_every_n_steps", "1")) == 0
    assert [e["loss"] for e in events(measured, "step")] == [e["loss"] for e in events(plain, "step")]
    assert len(json.loads((measured / "checkpoints.json").read_text(encoding="utf-8"))["evaluations"]) == 5
    a, b = load_file(str(plain / "last.safetensors")), load_file(str(measured / "last.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)
