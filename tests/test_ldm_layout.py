"""Our key map is the real LDM layout: checked against diffusers' own converters and real SD sizes.

A real 2-4 GB checkpoint never runs in CI, so these tests pin what makes it load by the same path: the
tensor names and shapes of full-size SD1/SD2 (built on the meta device, no memory), and agreement with an
independent implementation (diffusers' LDM->diffusers converters) on every tensor of the tiny models.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.loaders import single_file_utils as reference
from safetensors.torch import load_file, save_file

from library.errors import UserError
from library.models.detect import detect_config
from library.models.keymap import expected_ldm_shapes
from library.models.model_config import build_empty_modules, key_rules, shipped_config
from library.models.sd_model import load_model

# Tensor counts of real checkpoints (published files; see the note on the issue for the derivation).
REAL_COUNTS = {
    "sd1": {"unet": 686, "vae": 248, "text_encoder": 196},
    "sd2-512": {"unet": 686, "vae": 248, "text_encoder": 280},  # + last block (12) + projection + logit_scale = 294
    "sd2-768-v": {"unet": 686, "vae": 248, "text_encoder": 280},
}


def ldm_shapes(config_name):
    config = shipped_config(config_name)
    modules = build_empty_modules(config)
    rules = key_rules(config, modules)
    shapes = {}
    for part, module in modules.items():
        shapes.update(expected_ldm_shapes({k: tuple(v.shape) for k, v in module.state_dict().items()}, rules[part]))
    return config, modules, rules, shapes


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_full_size_layout_has_the_real_tensor_counts(name):
    _, _, rules, _ = ldm_shapes(name)
    assert {part: len(r) for part, r in rules.items()} == REAL_COUNTS[name]


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_full_size_shapes_match_published_checkpoints(name):
    _, _, _, shapes = ldm_shapes(name)
    sd2 = name.startswith("sd2")
    prefix = "model.diffusion_model."
    assert shapes[prefix + "input_blocks.0.0.weight"] == (320, 4, 3, 3)
    assert shapes[prefix + "input_blocks.1.1.proj_in.weight"] == ((320, 320) if sd2 else (320, 320, 1, 1))
    assert shapes[prefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024 if sd2 else 768)
    assert shapes[prefix + "input_blocks.3.0.op.weight"] == (320, 320, 3, 3)
    assert shapes[prefix + "middle_block.1.proj_out.bias"] == (1280,)
    assert shapes[prefix + "output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)
    assert shapes[prefix + "output_blocks.5.2.conv.weight"] == (1280, 1280, 3, 3)
    assert shapes[prefix + "output_blocks.11.1.transformer_blocks.0.attn1.to_q.weight"] == (320, 320)
    assert shapes[prefix + "out.2.weight"] == (4, 320, 3, 3)
    assert shapes["first_stage_model.encoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert shapes["first_stage_model.decoder.up.3.upsample.conv.weight"] == (512, 512, 3, 3)
    assert shapes["first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"] == (128, 256, 1, 1)
    if sd2:
        assert shapes["cond_stage_model.model.transformer.resblocks.22.attn.in_proj_weight"] == (3072, 1024)
        assert shapes["cond_stage_model.model.positional_embedding"] == (77, 1024)
    else:
        assert shapes["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] == (49408, 768)
    # The transformer blocks the similarity calculator reads exist at output_blocks 3..11:
    assert all(f"{prefix}output_blocks.{i}.1.transformer_blocks.0.attn1.to_q.weight" in shapes for i in range(3, 12))


@pytest.mark.parametrize("name", ["sd1", "sd2-512"])
def test_full_size_names_agree_with_diffusers_converter(name):
    """Feed diffusers' LDM->diffusers UNet/VAE converters our LDM names (meta tensors, no memory)."""
    config, modules, rules, shapes = ldm_shapes(name)
    ldm = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    unet = reference.convert_ldm_unet_checkpoint(ldm, config.unet)
    assert set(unet) == set(modules["unet"].state_dict())
    vae = reference.convert_ldm_vae_checkpoint(ldm, config.vae)
    assert set(vae) == set(modules["vae"].state_dict())


@pytest.mark.parametrize("part", ["unet", "vae"])
def test_tiny_tensors_agree_with_diffusers_converter(tiny_file, part):
    model = load_model(tiny_file)
    ldm = load_file(str(tiny_file))
    convert = {"unet": reference.convert_ldm_unet_checkpoint, "vae": reference.convert_ldm_vae_checkpoint}[part]
    theirs = convert(ldm, getattr(model.config, part))
    ours = getattr(model, part).state_dict()
    assert theirs.keys() == ours.keys()
    for key, value in ours.items():
        assert torch.equal(theirs[key].reshape(value.shape), value), key


def test_tiny_open_clip_text_encoder_agrees_with_diffusers(tiny_sd2):
    model = load_model(tiny_sd2)
    converted = reference.convert_open_clip_checkpoint(model.text_encoder, load_file(str(tiny_sd2)))
    theirs = {k.removeprefix("text_model."): v for k, v in converted.items()}  # it keeps transformers 4 names
    ours = model.text_encoder.state_dict()
    assert theirs.keys() - ours.keys() == {k for k in theirs if k.startswith("encoder.layers.2.")}  # unused block
    for key, value in ours.items():
        assert torch.equal(theirs[key], value), key


def test_sd1_and_sd2_are_told_apart_from_the_weights(tiny_sd1, tiny_sd2):
    assert load_model(tiny_sd1).family == "sd1"
    assert load_model(tiny_sd2).family == "sd2"
    _, _, _, sd1 = ldm_shapes("sd1")
    _, _, _, sd2 = ldm_shapes("sd2-512")
    assert detect_config(sd1, {}, "real-sd1")[0].name == "sd1"
    config, notes = detect_config(sd2, {}, "real-sd2")
    assert (config.name, config.prediction_type) == ("sd2-512", "epsilon")
    assert "assuming epsilon" in notes[0]


def test_v_prediction_comes_from_option_or_metadata(tiny_sd2, tmp_path):
    _, _, _, sd2 = ldm_shapes("sd2-512")
    assert detect_config(sd2, {}, "x", v_parameterization=True)[0].name == "sd2-768-v"
    assert detect_config(sd2, {"modelspec.prediction_type": "v"}, "x")[0].name == "sd2-768-v"
    assert detect_config(sd2, {"modelspec.architecture": "stable-diffusion-v2-768-v"}, "x")[0].name == "sd2-768-v"
    assert load_model(tiny_sd2, v_parameterization=True).prediction_type == "v_prediction"
    from library.tiny import write_tiny
    v_file = write_tiny(tmp_path / "v.safetensors", "sd2-v")
    assert load_model(v_file).prediction_type == "v_prediction"  # from the file's modelspec metadata


def test_with_prediction_type_returns_the_config_itself_when_nothing_changes():
    config = shipped_config("sd2-512")
    assert config.with_prediction_type(None) is config
    assert config.with_prediction_type("epsilon") is config
    v = config.with_prediction_type("v_prediction")
    assert (v.prediction_type, v.unet, config.prediction_type) == ("v_prediction", config.unet, "epsilon")


def corrupt(tiny_sd1, tmp_path, edit):
    tensors = load_file(str(tiny_sd1))
    edit(tensors)
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    return path


def test_missing_tensor_is_named(tiny_sd1, tmp_path):
    key = "model.diffusion_model.output_blocks.4.1.proj_out.weight"
    path = corrupt(tiny_sd1, tmp_path, lambda t: t.pop(key))
    with pytest.raises(UserError, match=r"bad\.safetensors: 1 unet tensor\(s\).*missing.*output_blocks\.4\.1\.proj_out"):
        load_model(path)


def test_wrong_shape_is_named(tiny_sd1, tmp_path):
    key = "first_stage_model.decoder.conv_in.weight"
    path = corrupt(tiny_sd1, tmp_path, lambda t: t.__setitem__(key, torch.zeros(1, 2, 3, 3)))
    with pytest.raises(UserError, match=r"decoder\.conv_in\.weight` is \[1, 2, 3, 3\]"):
        load_model(path)


def test_vae_file_given_as_model_gets_a_hint(tiny_sd1, tmp_path):
    tensors = {k[len("first_stage_model."):]: v for k, v in load_file(str(tiny_sd1)).items()
               if k.startswith("first_stage_model.")}
    save_file(tensors, str(tmp_path / "x.vae.safetensors"))
    with pytest.raises(UserError, match="looks like a VAE file"):
        load_model(tmp_path / "x.vae.safetensors")


def test_lora_file_given_as_model_gets_a_hint(tmp_path):
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 4)}, str(tmp_path / "style.safetensors"))
    with pytest.raises(UserError, match="LoRA"):
        load_model(tmp_path / "style.safetensors")


def test_inpainting_model_is_recognised(tiny_sd1, tmp_path):
    key = "model.diffusion_model.input_blocks.0.0.weight"
    path = corrupt(tiny_sd1, tmp_path, lambda t: t.__setitem__(key, torch.zeros(32, 9, 3, 3)))
    with pytest.raises(UserError, match="inpainting"):
        load_model(path)


def test_truncated_download_is_a_clear_error(tiny_sd1, tmp_path):
    data = tiny_sd1.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="partial download"):
        load_model(tmp_path / "half.safetensors")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "model.gguf").write_bytes(b"x")
    with pytest.raises(UserError, match="unsupported file type `.gguf`"):
        load_model(tmp_path / "model.gguf")
