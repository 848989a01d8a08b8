"""The anti-overfit rebuild end to end at CI size, on the tiny world base: its stages' outputs, the retrain's
start from the base, and a rerun that skips what is done."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

import train_certain
from library.config import load_train_config
from library.models.hashes import file_sha256

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "models" / "tiny-world-sd1.safetensors"
FACTOR = 1.5


@pytest.fixture(scope="module")
def folders(tmp_path_factory, sample_dataset) -> Path:
    """`general`: four world pictures; `suspect`: six `sks girl` pictures; and a dataset config with both."""
    root = tmp_path_factory.mktemp("rebuild")
    subprocess.run([sys.executable, "-m", "library.world.make", str(root / "world"), "--count", "4", "--seed", "5"],
                   check=True, cwd=ROOT, capture_output=True)
    (root / "world").rename(root / "general")
    (root / "suspect").mkdir()
    for image in sorted(p for p in sample_dataset.train_dir.glob("*.png") if p.with_suffix(".txt").exists())[:6]:
        shutil.copy(image, root / "suspect")
        shutil.copy(image.with_suffix(".txt"), root / "suspect")
    (root / "dataset.toml").write_text(
        '[general]\ncaption_extension = ".txt"\n[[datasets]]\nresolution = 64\nbatch_size = 2\nenable_bucket = true\n'
        'min_bucket_reso = 32\nmax_bucket_reso = 128\nbucket_reso_steps = 32\n'
        f'  [[datasets.subsets]]\n  image_dir = "{(root / "general").as_posix()}"\n'
        f'  [[datasets.subsets]]\n  image_dir = "{(root / "suspect").as_posix()}"\n', encoding="utf-8")
    return root


def workflow_args(root: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(WORLD), "--dataset_config", str(root / "dataset.toml"),
            "--output_dir", str(root / "run"), "--seed", "1", "--max_data_loader_n_workers", "0", "--cache_latents",
            "--clip_skip", "2", "--stop_text_encoder_training", "-1", "--max_train_steps", "12",
            "--learning_rate", "3e-4", "--save_every_n_steps", "4", "--validate_every_n_steps", "4",
            "--overfit_patience", "2", "--workflow", "anti_overfit", "--workflow_subset", str(root / "suspect"),
            "--workflow_factor", str(FACTOR), "--reg_steps", "4", *extra]


@pytest.fixture(scope="module")
def rebuilt(folders) -> Path:
    assert train_certain.main(workflow_args(folders)) == 0
    return folders / "run"


def test_each_stage_leaves_what_the_next_one_needs(rebuilt, folders):
    record = json.loads((rebuilt / "run.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in record["stages"]] == ["probe", "images", "dataset", "retrain"]
    probe, images, dataset, retrain = record["stages"]
    chosen = Path(probe["outputs"]["chosen"])
    summary = json.loads((rebuilt / "probe" / "checkpoints.json").read_text(encoding="utf-8"))
    assert chosen.name == summary["chosen"]["path"] and chosen.exists()
    assert summary["evaluations"][0]["validation_loss"] is not None  # a quarter of the subset was held out
    # images: the subset's six pictures x 1.5, one word each from the list, drawn by the chosen checkpoint
    pngs = sorted((rebuilt / "images").glob("*.png"))
    assert len(pngs) == images["inputs"]["count"] == images["outputs"]["images"] == 9
    words = {line.split("\t")[0] for line in (rebuilt / "words.txt").read_text(encoding="utf-8").splitlines()}
    captions = [p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in pngs]
    assert set(captions) <= words
    assert all(f"Model hash: {file_sha256(chosen)[:10]}" in Image.open(p).info["parameters"] for p in pngs)
    # the new dataset config: the suspect subset replaced, the other one kept
    loaded = load_train_config(["--dataset_config", dataset["outputs"]["dataset_config"]])
    dirs = [Path(s.image_dir) for s in loaded.datasets.subsets]
    assert dirs == [folders / "general", rebuilt / "images"]
    assert Path(retrain["outputs"]["final"]).exists()


def test_the_retrain_starts_from_the_base_not_from_the_probe(rebuilt):
    record = json.loads((rebuilt / "run.json").read_text(encoding="utf-8"))
    chosen = Path(record["stages"][0]["outputs"]["chosen"])
    early = load_file(str(rebuilt / "retrain" / "at-step00000004.safetensors"))
    unet = [k for k in early if k.startswith("model.diffusion_model.")]

    def distance(path: Path) -> float:
        other = load_file(str(path))
        return sum(float((early[k].float() - other[k].float()).pow(2).sum()) for k in unet)

    assert distance(WORLD) < distance(chosen) / 2


def test_running_it_again_trains_and_draws_nothing_new(rebuilt, folders, capfd):
    stamps = {p: p.stat().st_mtime_ns for p in (rebuilt / "images").glob("*.png")}
    finals = {p: p.stat().st_mtime_ns for p in (rebuilt / "probe" / "probe.safetensors", rebuilt / "retrain" / "last.safetensors")}
    record = (rebuilt / "run.json").read_text(encoding="utf-8")
    assert train_certain.main(workflow_args(folders)) == 0
    assert (rebuilt / "run.json").read_text(encoding="utf-8") == record  # the stages' finish times stay
    err = capfd.readouterr().err
    assert "probe: done before" in err and "retrain: done before" in err and "steps:" not in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.stat().st_mtime_ns for p in finals} == finals


def test_a_subset_that_is_not_in_the_dataset_is_named_before_anything_runs(folders, capsys):
    args = workflow_args(folders)
    args[args.index("--workflow_subset") + 1] = str(folders / "suspekt")
    args[args.index("--output_dir") + 1] = str(folders / "never")
    assert train_certain.main(args) == 2
    err = capsys.readouterr().err
    assert "suspekt" in err and f"did you mean `{folders / 'suspect'}`" in err
    assert not (folders / "never").exists()


def test_the_workflow_table_takes_short_names(tmp_path):
    toml = tmp_path / "args.toml"
    toml.write_text('[workflow]\nworkflow = "anti_overfit"\nsubset = "data/10_sks girl"\nfactor = 2.5\n'
                    'word_list = "tags.csv"\n', encoding="utf-8")
    loaded = load_train_config(["--config_file", str(toml)])
    wf = loaded.train.workflow
    assert (wf.workflow, wf.workflow_subset, wf.workflow_factor, wf.workflow_word_list) == (
        "anti_overfit", "data/10_sks girl", 2.5, "tags.csv")
