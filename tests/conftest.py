"""Shared fixtures: tiny SD checkpoints built once per test session by the product's own builder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the product must never need the hub; make any attempt fail
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
