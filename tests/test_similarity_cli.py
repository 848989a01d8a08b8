"""similarity.py as a user runs it: the table, JSON/CSV/PNG outputs, and every mistake reported without a traceback."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from library.models.hashes import legacy_hash
from library.similarity.cli import main
from library.tiny import write_tiny

ROOT = Path(__file__).resolve().parents[1]
ATTN = "model.diffusion_model.output_blocks.{}.1.transformer_blocks.0.attn1.to_{}.weight"


@pytest.fixture(scope="module")
def sd1_pair(tmp_path_factory, tiny_sd1):
    return tiny_sd1, write_tiny(tmp_path_factory.mktemp("sim_cli") / "seed-9.safetensors", "sd1", seed=9)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_script_prints_the_reference_table_and_writes_every_output(sd1_pair, tmp_path):
    base, other = sd1_pair
    args = [sys.executable, str(ROOT / "similarity.py"), base, other, base, "--matrix", "--plot", tmp_path / "m.png",
            "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv"]
    result = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    base_hash = legacy_hash(base)
    assert f"base: tiny-sd1.safetensors [{base_hash}]" in result.stdout
    assert f"tiny-sd1.safetensors  {base_hash}   100.0000%" in result.stdout
    assert "similarity matrix (%), row = base:" in result.stdout
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["path"] for r in data["results"]] == [str(other), str(base)]
    assert list(data["results"][0]["blocks"]) == [f"OUT{n:02d}" for n in range(3, 11)]
    assert data["results"][1]["similarity"] == pytest.approx(100, abs=1e-6)
    assert data["matrix"]["models"] == [str(base), str(other), str(base)]
    assert data["matrix"]["similarity"][0][1:] == [r["similarity"] for r in data["results"]]
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["path"] for r in rows] == [str(other), str(base)]
    assert float(rows[0]["similarity"]) == pytest.approx(data["results"][0]["similarity"], abs=1e-5)
    assert float(rows[0]["OUT10"]) == pytest.approx(data["results"][0]["blocks"]["OUT10"], abs=1e-5)


def test_extended_blocks_add_a_per_block_table(sd1_pair, capsys):
    code, out, _ = run_cli(capsys, *sd1_pair, "--blocks", "extended")
    assert code == 0
    assert "per block (%):" in out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[lines.index("per block (%):") + 2:]] == [
        "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "MID", *(f"OUT{n:02d}" for n in range(3, 12))]


def test_plot_of_two_models_has_no_dendrogram_but_is_a_png(sd1_pair, tmp_path, capsys):
    code, out, _ = run_cli(capsys, *sd1_pair, "--plot", tmp_path / "two.png")
    assert code == 0 and "similarity matrix" in out  # --plot computes the matrix it draws
    assert (tmp_path / "two.png").read_bytes()[:4] == b"\x89PNG"


def test_sd1_against_sd2_warns_but_compares(tiny_sd1, tiny_sd2, capsys):
    code, out, err = run_cli(capsys, tiny_sd1, tiny_sd2)
    assert code == 0 and "tiny-sd2.safetensors" in out
    assert f"warning: {tiny_sd1} is SD1 but {tiny_sd2} is SD2" in err


def test_different_widths_name_both_files_and_the_block(tiny_sd1, tmp_path, capsys):
    tensors = load_file(str(tiny_sd1))
    for p in "qkv":
        tensors[ATTN.format(4, p)] = torch.zeros(48, 48)
    wider = tmp_path / "wider.safetensors"
    save_file(tensors, str(wider))
    code, _, err = run_cli(capsys, tiny_sd1, wider)
    assert code == 2 and "Traceback" not in err
    assert f"{wider} and {tiny_sd1} have different architectures: block OUT04 to_q is [48, 48]" in err


@pytest.mark.parametrize("kind, hint", [("lora", "It looks like a LoRA file"), ("vae", "It looks like a VAE file"),
                                        ("random", "")])
def test_a_file_that_is_not_a_checkpoint_names_the_missing_keys(tiny_sd1, tmp_path, capsys, kind, hint):
    key = {"lora": "lora_unet_up_blocks_1_attentions_0_proj_in.lora_down.weight",
           "vae": "encoder.conv_in.weight", "random": "weights"}[kind]
    path = tmp_path / f"{kind}.safetensors"
    save_file({key: torch.zeros(4, 4)}, str(path))
    code, _, err = run_cli(capsys, tiny_sd1, path)
    assert code == 2
    assert f"{path}: not a Stable Diffusion UNet checkpoint: 24 of the 24 attention weights" in err
    assert ATTN.format(3, "q") in err and hint in err


def test_missing_truncated_and_unknown_files_are_named(tiny_sd1, tmp_path, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_sd1.read_bytes()[:100_000])
    cut_ckpt = tmp_path / "cut.ckpt"
    write_tiny(tmp_path / "whole.ckpt", "sd1", seed=1)
    cut_ckpt.write_bytes((tmp_path / "whole.ckpt").read_bytes()[:100_000])
    (tmp_path / "notes.txt").write_text("hello")
    expected = {tmp_path / "nope.safetensors": "nope.safetensors: file not found",
                cut: f"{cut}: not a readable .safetensors file",
                cut_ckpt: f"{cut_ckpt} could not be read as a PyTorch checkpoint",
                tmp_path / "notes.txt": "notes.txt: unsupported file type `.txt`",
                tmp_path: f"{tmp_path}: a folder but not a diffusers model"}
    for path, message in expected.items():
        code, _, err = run_cli(capsys, tiny_sd1, path)
        assert code == 2 and message in err, err
