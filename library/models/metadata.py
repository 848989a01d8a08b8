"""Safetensors metadata: Stability AI's ModelSpec keys that A1111, Forge and Civitai read, plus ours.

All values are strings (a safetensors requirement); structured values are JSON-encoded.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Mapping

from .model_config import ModelConfig

SPEC_VERSION = "1.0.1"
IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"
PRODUCT = "certain-strategy"


def architecture_name(config: ModelConfig) -> str:
    if config.family == "sd1":
        return "stable-diffusion-v1"
    return "stable-diffusion-v2-768-v" if config.prediction_type == "v_prediction" else "stable-diffusion-v2-512"


def modelspec_metadata(config: ModelConfig, *, title: str, resolution: tuple[int, int] | None = None,
                       extra: Mapping[str, object] | None = None, date: datetime | None = None) -> dict[str, str]:
    """ModelSpec keys for a checkpoint of `config`, then `extra` (e.g. our training settings) on top."""
    width, height = resolution or (config.resolution, config.resolution)
    meta = {
        "modelspec.sai_model_spec": SPEC_VERSION,
        "modelspec.architecture": architecture_name(config),
        "modelspec.implementation": IMPLEMENTATION,
        "modelspec.implementation_version": PRODUCT,
        "modelspec.title": title,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.prediction_type": "v" if config.prediction_type == "v_prediction" else "epsilon",
        "modelspec.date": (date or datetime.now()).strftime("%Y-%m-%dT%H:%M:%S"),
        "certain.model_config": config.name,
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return meta
