"""Saved checkpoints describe themselves with ModelSpec keys, as A1111, Forge and Civitai read them."""

from __future__ import annotations

from datetime import datetime

import pytest
from safetensors import safe_open

from library.models.metadata import modelspec_metadata
from library.models.model_config import shipped_config
from library.models.sd_model import load_model, save_model


@pytest.mark.parametrize("name, prediction, architecture, resolution", [
    ("sd1", "epsilon", "stable-diffusion-v1", "512x512"),
    ("sd2-512", "epsilon", "stable-diffusion-v2-512", "512x512"),
    ("sd2-768-v", "v_prediction", "stable-diffusion-v2-768-v", "768x768"),
])
def test_modelspec_keys_follow_the_architecture(name, prediction, architecture, resolution):
    meta = modelspec_metadata(shipped_config(name), title="my model", date=datetime(2026, 11, 26, 12, 0, 0))
    assert meta["modelspec.sai_model_spec"] == "1.0.1"
    assert meta["modelspec.architecture"] == architecture
    assert meta["modelspec.resolution"] == resolution
    assert meta["modelspec.prediction_type"] == ("v" if prediction == "v_prediction" else "epsilon")
    assert meta["modelspec.title"] == "my model"
    assert meta["modelspec.date"] == "2026-11-26T12:00:00"


def test_our_training_metadata_rides_along_as_strings():
    meta = modelspec_metadata(shipped_config("sd1"), title="t", resolution=(512, 768),
                              extra={"ss_steps": 1600, "ss_tag_frequency": {"10_sks girl": {"1girl": 12}}})
    assert meta["modelspec.resolution"] == "512x768"
    assert meta["ss_steps"] == "1600"
    assert meta["ss_tag_frequency"] == '{"10_sks girl": {"1girl": 12}}'
    assert all(isinstance(v, str) for v in meta.values())


def test_metadata_is_written_and_read_back(tiny_sd1, tmp_path):
    model = load_model(tiny_sd1)
    meta = modelspec_metadata(model.config, title="round trip", extra={"certain.note": "hello"})
    path = save_model(model, tmp_path / "m.safetensors", metadata=meta)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == meta
    assert load_model(path).metadata == meta
