"""Load and save a whole Stable Diffusion model: UNet, VAE and text encoder, offline, from any layout.

    model = load_model("anime.safetensors")           # or .ckpt, or a diffusers folder
    save_model(model, "out.safetensors", precision="fp16")

A single-file load reads every tensor, detects the architecture (`detect`), maps names with the rules of
`keymap`, and checks coverage and shapes before anything is assigned, so a wrong or truncated file fails
with its key named instead of leaving random weights behind. Tensors the modules do not hold (EMA copies,
schedule buffers, SD2's last OpenCLIP block, ...) ride along in `extras` and are written back unchanged.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, TypeVar

import torch

from ..errors import UserError
from .checkpoint_files import (SINGLE_FILE_SUFFIXES, read_diffusers_folder, read_tensor_file, read_tensor_shapes,
                               weights_file, write_diffusers_folder, write_tensor_file)
from .detect import detect_config, wanted_prediction
from .keymap import KeyRule, expected_ldm_shapes, to_ldm, to_module
from .model_config import PARTS, ModelConfig, build_empty_modules, key_rules, resolve_config
from .text_keys import SD1_PREFIX, strip_text_model
from .vae_keys import PREFIX as VAE_PREFIX, vae_rules

PRECISIONS = {"float": torch.float32, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Value = TypeVar("Value")  # a tensor, or its shape


@dataclass
class SDModel:
    config: ModelConfig
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    source: Path | None = None
    vae_source: Path | None = None
    notes: list[str] = field(default_factory=list)
    # part -> module key -> dtype in the file it came from, so a save without a precision writes it as read
    read_dtypes: dict[str, dict[str, torch.dtype]] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def prediction_type(self) -> str:
        return self.config.prediction_type

    @property
    def tokenizer(self):
        from ..text.tokenizer import load_tokenizer
        return load_tokenizer(self.family)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}

    def describe(self) -> list[str]:
        """Lines for the log and bug reports: what was loaded and from where."""
        params = {part: sum(p.numel() for p in m.parameters()) / 1e6 for part, m in self.modules().items()}
        lines = [f"model: {self.source} ({self.config.name}, {self.family}, {self.prediction_type})",
                 "parameters: " + ", ".join(f"{part} {n:.2f} M" for part, n in params.items()),
                 f"extra tensors carried unchanged: {len(self.extras)}"]
        if self.vae_source:
            lines.append(f"vae: {self.vae_source}")
        return lines + self.notes

    def module_states(self, cast: torch.dtype | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Each module's current weights as saved: floating ones in `cast`, or else in the dtype they were read
        in (a model loaded as float32 from an fp16 file saves as fp16 again)."""
        states = {}
        for part, module in self.modules().items():
            read = self.read_dtypes.get(part, {})
            states[part] = {k: _cast(v, cast or read.get(k)) for k, v in module.state_dict().items()}
        return states

    def ldm_state_dict(self, cast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Every tensor in LDM layout: the modules' weights as `module_states` gives them, then the extras."""
        rules = key_rules(self.config, self.modules())
        state: dict[str, torch.Tensor] = {}
        for part, module_state in self.module_states(cast).items():
            state.update(to_ldm(module_state, rules[part]))
        state.update({k: _cast(v, cast) for k, v in self.extras.items()})
        return state


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def load_model(path: str | Path, *, v_parameterization: bool | None = None, vae: str | Path | None = None,
               model_config: str | Path | None = None, dtype: torch.dtype | None = torch.float32) -> SDModel:
    """Load a checkpoint file or diffusers folder. `dtype` None keeps the stored precision."""
    path = Path(path)
    if path.is_dir():
        model = _load_diffusers(path, v_parameterization, model_config, dtype)
    else:
        model = _load_single_file(path, v_parameterization, model_config, dtype)
    if vae is not None:
        replace_vae(model, vae, dtype)
    return model


def describe_checkpoint(path: str | Path, *, v_parameterization: bool | None = None,
                        model_config: str | Path | None = None) -> tuple[ModelConfig, list[str]]:
    """The config a checkpoint file or diffusers folder would load with, and notes, without loading its weights
    (a .safetensors file is read from its header): what `train_certain.py --check` needs."""
    path = Path(path)
    if model_config is not None:
        return resolve_config(model_config), []
    if path.is_dir():
        return ModelConfig.from_folder(path), []
    shapes, metadata = read_tensor_shapes(path)
    return detect_config(normalize_ldm_keys(shapes), metadata, str(path), v_parameterization)


def _load_single_file(path: Path, v_param: bool | None, model_config, dtype) -> SDModel:
    tensors, metadata = read_tensor_file(path)
    tensors = normalize_ldm_keys(tensors)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if model_config is not None:
        config, notes = _override_prediction(resolve_config(model_config), v_param, metadata), []
    else:
        config, notes = detect_config(shapes, metadata, str(path), v_param)
    modules = build_empty_modules(config)
    rules = key_rules(config, modules)
    for part in PARTS:
        _check_ldm(shapes, rules[part], modules[part], part, config, path)
    read_dtypes = {part: _assign(modules[part], to_module(tensors, rules[part]), dtype) for part in PARTS}
    used = {rule.ldm for part in PARTS for rule in rules[part]}
    extras = {k: v for k, v in tensors.items() if k not in used}
    return SDModel(config, **modules, extras=extras, metadata=metadata, source=path, notes=notes,
                   read_dtypes=read_dtypes)


def _load_diffusers(folder: Path, v_param: bool | None, model_config, dtype) -> SDModel:
    config = resolve_config(model_config) if model_config is not None else ModelConfig.from_folder(folder)
    states, extras, metadata = read_diffusers_folder(folder)
    config = _override_prediction(config, v_param, {})
    modules = build_empty_modules(config)
    read_dtypes = {}
    for part in PARTS:
        state = states[part]
        if part == "text_encoder":
            wants_prefix = next(iter(modules[part].state_dict())).startswith("text_model.")
            state = {k if wants_prefix else strip_text_model(k): v for k, v in state.items()
                     if not k.endswith("position_ids")}
        state = modernize_attention_keys(state)
        _check_module_state(state, modules[part], part, folder)
        read_dtypes[part] = _assign(modules[part], state, dtype)
    return SDModel(config, **modules, extras=extras, metadata=metadata, source=folder, read_dtypes=read_dtypes)


def _override_prediction(config: ModelConfig, v_param: bool | None, metadata: Mapping[str, str]) -> ModelConfig:
    return config.with_prediction_type(wanted_prediction(v_param, metadata))


def normalize_ldm_keys(tensors: dict[str, Value]) -> dict[str, Value]:
    """Some SD1 files omit the `text_model.` level (`cond_stage_model.transformer.encoder...`); add it."""
    short = "cond_stage_model.transformer."
    if any(k.startswith(SD1_PREFIX) for k in tensors) or not any(k.startswith(short) for k in tensors):
        return tensors
    return {(SD1_PREFIX + k[len(short):] if k.startswith(short) else k): v for k, v in tensors.items()}


def _check_ldm(shapes: Mapping[str, tuple], rules: list[KeyRule], module, part: str, config: ModelConfig,
               source: Path) -> None:
    expected = expected_ldm_shapes({k: tuple(v.shape) for k, v in module.state_dict().items()}, rules)
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise UserError(f"{source}: {len(missing)} {part} tensor(s) that the `{config.name}` layout needs are "
                        f"missing, e.g. {', '.join(missing[:3])}. The file is incomplete or of another "
                        f"architecture.")
    wrong = [(k, shapes[k], want) for k, want in expected.items() if shapes[k] != want]
    if wrong:
        k, got, want = wrong[0]
        raise UserError(f"{source}: {len(wrong)} {part} tensor(s) have unexpected shapes, e.g. `{k}` is "
                        f"{list(got)} but the `{config.name}` config expects {list(want)}.")


_OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def modernize_attention_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers before 0.14 named the VAE mid-block attention query/key/value/proj_attn; diffusers still
    renames them on load, so folders and VAE files saved back then keep working here too."""
    def rename(key: str) -> str:
        head, _, tail = key.rpartition(".attentions.0.")
        if not head:
            return key
        part, _, param = tail.partition(".")
        return f"{head}.attentions.0.{_OLD_ATTENTION.get(part, part)}.{param}"
    return {rename(k): v for k, v in state.items()}


def _check_module_state(state: Mapping[str, torch.Tensor], module, part: str, source: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unknown or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}" for label, keys in
                           (("missing", missing), ("unexpected", unknown), ("wrong shape", wrong)) if keys)
        raise UserError(f"{source}: {part} weights do not match {part}/config ({detail}).")


def _assign(module: torch.nn.Module, state: Mapping[str, torch.Tensor],
            dtype: torch.dtype | None) -> dict[str, torch.dtype]:
    """Load `state` into `module` as `dtype`; returns each tensor's dtype as read, for saving it back so."""
    module.load_state_dict({k: _cast(v, dtype) for k, v in state.items()}, strict=True, assign=True)
    return {k: v.dtype for k, v in state.items()}


def replace_vae(model: SDModel, path: str | Path, dtype: torch.dtype | None = torch.float32) -> None:
    """Swap in an external VAE (`.vae.pt`, `.vae.safetensors`, a diffusers VAE file, a full checkpoint)."""
    path = Path(path)
    if path.is_dir():  # a diffusers VAE folder, or a pipeline folder holding vae/
        path = weights_file(path / "vae" if (path / "vae").is_dir() else path, "vae")
    tensors, _ = read_tensor_file(path)
    tensors = modernize_attention_keys({k: v for k, v in tensors.items() if not k.startswith(("loss.", "model_ema."))})
    module_keys = set(model.vae.state_dict())
    if module_keys <= set(tensors):  # already diffusers names
        state = {k: tensors[k] for k in module_keys}
    else:
        ldm = {(k if k.startswith(VAE_PREFIX) else VAE_PREFIX + k): v for k, v in tensors.items()}
        rules = vae_rules(list(module_keys), model.config.vae)
        _check_ldm({k: tuple(v.shape) for k, v in ldm.items()}, rules, model.vae, "VAE", model.config, path)
        state = to_module(ldm, rules)
    _check_module_state(state, model.vae, "vae", path)
    model.read_dtypes["vae"] = _assign(model.vae, state, dtype)
    model.vae_source = path


def save_model(model: SDModel, path: str | Path, *, precision: str | None = None,
               metadata: Mapping[str, str] | None = None) -> Path:
    """Write `path`: `.safetensors`/`.ckpt` in LDM layout; a name without extension as a diffusers folder.

    `precision` casts floating tensors (float/fp16/bf16); None writes each tensor in the dtype it was read in
    (its current dtype where it was not read from a file), so a load followed by a save is bit-exact.
    `metadata` replaces the model's own (safetensors and diffusers folders only; .ckpt has no metadata).
    """
    path = Path(path)
    if path.suffix and path.suffix.lower() not in SINGLE_FILE_SUFFIXES and not path.is_dir():
        close = difflib.get_close_matches(path.suffix.lower(), SINGLE_FILE_SUFFIXES, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UserError(f"{path}: unknown model file type `{path.suffix}`.{hint} Use .safetensors (recommended) "
                        f"or .ckpt, or a name without an extension for a diffusers folder.")
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"save precision `{precision}` is not one of {', '.join(PRECISIONS)}.")
    cast = PRECISIONS.get(precision)
    meta = dict(model.metadata if metadata is None else metadata)
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        write_tensor_file(model.ldm_state_dict(cast), path, meta)
    else:
        configs = {"unet": model.config.unet, "vae": model.config.vae,
                   "text_encoder": model.config.text_encoder, "scheduler": model.config.scheduler}
        extras = {k: _cast(v, cast) for k, v in model.extras.items()}
        write_diffusers_folder(path, configs, model.module_states(cast), extras, meta, model.family)
    return path
