"""Shared fixtures: tiny SD checkpoints built once per test session by the product's own builder.

Caches that the product and its libraries keep in the home folder (model hashes, matplotlib's font list,
Hugging Face and torch compile caches) are pointed into the session's pytest temp folder before any test
module imports those libraries, so the suite writes nothing outside its temporary folders.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the product must never need the hub; make any attempt fail
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Variables read by the product (CERTAIN_CACHE_DIR) and its libraries; subprocesses of tests inherit them.
CACHE_VARIABLES = {"CERTAIN_CACHE_DIR": "certain-strategy", "MPLCONFIGDIR": "matplotlib", "HF_HOME": "huggingface",
                   "TORCHINDUCTOR_CACHE_DIR": "torchinductor", "TRITON_CACHE_DIR": "triton",
                   "XDG_CACHE_HOME": "xdg-cache", "XDG_CONFIG_HOME": "xdg-config"}


@pytest.hookimpl(trylast=True)  # after pytest's own configure has made the temp-folder factory
def pytest_configure(config):
    """Runs before collection, so the libraries test modules import read these paths, not the home folder."""
    caches = config._tmp_path_factory.mktemp("caches", numbered=False)
    for variable, folder in CACHE_VARIABLES.items():
        os.environ[variable] = str(caches / folder)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_sd1(tiny_dir):
    from library.tiny import write_tiny
    return write_tiny(tiny_dir / "tiny-sd1.safetensors", "sd1", seed=1)


@pytest.fixture(scope="session")
def tiny_sd2(tiny_dir):
    from library.tiny import write_tiny
    return write_tiny(tiny_dir / "tiny-sd2.safetensors", "sd2", seed=2)


@pytest.fixture(params=["sd1", "sd2"])
def tiny_file(request, tiny_sd1, tiny_sd2):
    return {"sd1": tiny_sd1, "sd2": tiny_sd2}[request.param]


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory):
    from library.sample_data import write_sample_dataset
    return write_sample_dataset(tmp_path_factory.mktemp("data") / "sample", seed=0)


@pytest.fixture(scope="session")
def train_args(tiny_sd1, sample_dataset):
    """Command-line arguments for a small, fast training run of the tiny model on the sample dataset."""
    def make(out, *extra: str) -> list[str]:
        return ["--pretrained_model_name_or_path", str(tiny_sd1), "--train_data_dir", str(sample_dataset.train_dir.parent),
                "--caption_extension", ".txt", "--resolution", "64", "--train_batch_size", "4", "--seed", "7",
                "--learning_rate", "1e-4", "--output_dir", str(out), "--max_data_loader_n_workers", "0",
                "--progress_jsonl", str(out / "progress.jsonl"), *extra]
    return make
