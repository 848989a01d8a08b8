"""The command-line entry points, run as a user runs them: in a subprocess, from the project root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_quickstart_builds_the_default_and_loads_it_back(tmp_path):
    result = run(str(ROOT / "train_certain.py"), "--quickstart", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tiny-sd1, sd1, epsilon" in result.stdout
    assert re.search(r"model hash: [0-9a-f]{10} \(AutoV2\), [0-9a-f]{8} \(old\)", result.stdout)
    assert "10_sks girl: train, 13 images x10, 10 with .txt captions, class tokens 'sks girl'" in result.stdout
    assert (tmp_path / "quickstart" / "model" / "tiny-sd1.safetensors").is_file()
    again = run(str(ROOT / "train_certain.py"), "--quickstart", cwd=tmp_path)  # reuses what exists
    assert again.returncode == 0 and again.stdout.splitlines()[:4] == result.stdout.splitlines()[:4]


def test_bad_config_is_reported_without_a_traceback(tmp_path):
    config = tmp_path / "forum.toml"
    config.write_text('[optimizer_arguments]\nlearnig_rate = 1e-6\n')
    result = run(str(ROOT / "train_certain.py"), "--config_file", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{config}:2: unknown key `learnig_rate`" in result.stderr
    assert "Did you mean `learning_rate`" in result.stderr


def test_missing_model_file_is_a_user_error(tmp_path):
    (tmp_path / "data" / "5_sks girl").mkdir(parents=True)
    result = run(str(ROOT / "train_certain.py"), "--pretrained_model_name_or_path", str(tmp_path / "none.safetensors"),
                 "--train_data_dir", str(tmp_path / "data"), "--resolution", "512")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "none.safetensors: file not found" in result.stderr


def test_help_lists_kohya_options_and_the_quickstart():
    result = run(str(ROOT / "train_certain.py"), "--help")
    assert result.returncode == 0
    for flag in ("--pretrained_model_name_or_path", "--dataset_config", "--no-xformers", "--quickstart"):
        assert flag in result.stdout


@pytest.mark.parametrize("script", ["gen_reg_images.py", "similarity.py"])
def test_scripts_of_later_issues_say_they_are_not_implemented(script):
    result = run(str(ROOT / script))
    assert result.returncode == 2 and "not implemented in this version" in result.stderr


def test_tiny_cli_writes_a_seeded_checkpoint(tmp_path):
    from library.tiny import main

    result = run("-m", "library.tiny", str(tmp_path / "a.safetensors"), "--variant", "sd2", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "sd2, seed 3" in result.stdout
    for name, seed in (("b", 3), ("c", 4)):  # in-process: same code, without paying the imports again
        assert main([str(tmp_path / f"{name}.safetensors"), "--variant", "sd2", "--seed", str(seed)]) == 0
    a, b, c = (load_file(str(tmp_path / f"{n}.safetensors")) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    assert not torch.equal(a["model.diffusion_model.out.2.weight"], c["model.diffusion_model.out.2.weight"])
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in a


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(bash setup\.sh && .+)$", readme, flags=re.M)
    assert commands[:2] == ["bash setup.sh && .venv/bin/python train_certain.py --quickstart",
                            "bash setup.sh && .venv/bin/python -m pytest -q"]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
