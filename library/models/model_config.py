"""Model config folders (diffusers layout, configs only) and the modules built from them.

The weights of an SD checkpoint do not say everything: head counts, the noise schedule and the prediction
type live only in configs. We ship one folder per architecture in `configs/models/` and read a user's
diffusers folder the same way, so every load goes through `ModelConfig`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import UserError

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs" / "models"
PARTS = ("unet", "vae", "text_encoder")
CONFIG_FILES = {"unet": "unet/config.json", "vae": "vae/config.json", "text_encoder": "text_encoder/config.json",
                "scheduler": "scheduler/scheduler_config.json"}


@dataclass(frozen=True)
class ModelConfig:
    name: str
    folder: Path
    unet: dict
    vae: dict
    text_encoder: dict
    scheduler: dict

    @property
    def family(self) -> str:
        """"sd2" for the OpenCLIP text tower (gelu), "sd1" for OpenAI CLIP (quick_gelu)."""
        return "sd2" if self.text_encoder.get("hidden_act") == "gelu" else "sd1"

    @property
    def prediction_type(self) -> str:
        return self.scheduler.get("prediction_type", "epsilon")

    @property
    def fingerprint(self) -> tuple:
        """What the weights reveal: text tower, input channels, base width, cross-attention width."""
        u = self.unet
        return (self.family, u["in_channels"], u["block_out_channels"][0], u["cross_attention_dim"])

    @property
    def resolution(self) -> int:
        """Native image size in pixels (latent sample_size x 8)."""
        return int(self.unet["sample_size"]) * 8

    @classmethod
    def from_folder(cls, folder: str | Path, name: str | None = None) -> "ModelConfig":
        folder = Path(folder)
        loaded = {}
        for part, relative in CONFIG_FILES.items():
            path = folder / relative
            if not path.is_file():
                raise UserError(f"{folder}: not a model config folder, {path.relative_to(folder)} is missing "
                                f"(expected unet/, vae/, text_encoder/ and scheduler/ configs).")
            try:
                loaded[part] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        return cls(name=name or folder.name, folder=folder, **loaded)

    def with_prediction_type(self, prediction_type: str | None) -> "ModelConfig":
        """This config predicting `prediction_type`; itself when that is None or what it already predicts."""
        if prediction_type in (None, self.prediction_type):
            return self
        return ModelConfig(self.name, self.folder, self.unet, self.vae, self.text_encoder,
                           {**self.scheduler, "prediction_type": prediction_type})


@lru_cache(maxsize=None)
def shipped_configs() -> tuple[ModelConfig, ...]:
    return tuple(ModelConfig.from_folder(p) for p in sorted(CONFIG_ROOT.iterdir()) if (p / "unet").is_dir())


def shipped_config(name: str) -> ModelConfig:
    for config in shipped_configs():
        if config.name == name:
            return config
    names = ", ".join(c.name for c in shipped_configs())
    raise UserError(f"unknown model config `{name}`; shipped configs: {names} (or give a folder path).")


def resolve_config(name_or_folder: str | Path) -> ModelConfig:
    """A shipped config by name (`sd1`, `sd2-768-v`, ...) or any folder in diffusers config layout."""
    path = Path(name_or_folder)
    return ModelConfig.from_folder(path) if path.is_dir() else shipped_config(str(name_or_folder))


def build_empty_modules(config: ModelConfig) -> dict:
    """UNet, VAE and text encoder with parameters on the meta device: instant, even at full size."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        return {
            "unet": UNet2DConditionModel.from_config(config.unet),
            "vae": AutoencoderKL.from_config(config.vae),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**constructor_args(config.text_encoder))),
        }


def constructor_args(d: dict) -> dict:
    """A config.json as constructor arguments: without the `_`-prefixed and bookkeeping entries."""
    return {k: v for k, v in d.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}


def key_rules(config: ModelConfig, modules: dict) -> dict:
    """LDM <-> module rules for the three parts, derived from the modules' own key names."""
    from .text_keys import clip_rules, open_clip_rules
    from .unet_keys import unet_rules
    from .vae_keys import vae_rules

    keys = {part: list(modules[part].state_dict().keys()) for part in PARTS}
    text = open_clip_rules if config.family == "sd2" else clip_rules
    return {
        "unet": unet_rules(keys["unet"], config.unet),
        "vae": vae_rules(keys["vae"], config.vae),
        "text_encoder": text(keys["text_encoder"]),
    }
