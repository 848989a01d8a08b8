"""Loading and saving whole SD models: every format round-trips every tensor bit for bit."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from library.errors import UserError
from library.models.sd_model import load_model, save_model


def tensors_of(path):
    return load_file(str(path))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())[:5]
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("precision", [None, "fp16", "bf16"])
def test_safetensors_round_trip_is_bit_exact(tiny_file, tmp_path, precision):
    first = tmp_path / "first.safetensors"
    save_model(load_model(tiny_file, dtype=None), first, precision=precision)
    second = tmp_path / "second.safetensors"
    save_model(load_model(first, dtype=None), second)
    assert_same_tensors(tensors_of(first), tensors_of(second))
    if precision is None:
        assert_same_tensors(tensors_of(tiny_file), tensors_of(first))


def stored_tensors(path):
    """Every tensor of a .safetensors or .ckpt file, as stored."""
    if path.suffix == ".ckpt":
        return torch.load(path, weights_only=True)["state_dict"]
    return tensors_of(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("precision", ["fp16", "bf16", "float"])
def test_default_load_then_save_keeps_every_dtype_bit_exact(tiny_sd1, tmp_path, suffix, precision):
    source = save_model(load_model(tiny_sd1), tmp_path / f"source{suffix}", precision=precision)
    back = save_model(load_model(source), tmp_path / f"back{suffix}")  # default options on both sides
    assert_same_tensors(stored_tensors(source), stored_tensors(back))


def test_fp16_file_loads_as_fp32_and_saves_back_exactly(tiny_sd1, tmp_path):
    half = save_model(load_model(tiny_sd1), tmp_path / "half.safetensors", precision="fp16")
    model = load_model(half)  # default dtype float32: an exact upcast
    assert next(model.unet.parameters()).dtype == torch.float32
    again = save_model(model, tmp_path / "again.safetensors", precision="fp16")
    assert_same_tensors(tensors_of(half), tensors_of(again))


def test_ckpt_round_trip_is_bit_exact(tiny_file, tmp_path):
    ckpt = save_model(load_model(tiny_file), tmp_path / "model.ckpt")
    back = save_model(load_model(ckpt), tmp_path / "back.safetensors")
    assert_same_tensors(tensors_of(tiny_file), tensors_of(back))
    raw = torch.load(ckpt, weights_only=True)
    assert set(raw) == {"state_dict"}  # the layout A1111 and kohya expect


def test_diffusers_folder_round_trip_is_bit_exact_and_keeps_extras(tiny_file, tmp_path):
    folder = save_model(load_model(tiny_file), tmp_path / "pipeline")
    assert (folder / "model_index.json").is_file() and (folder / "tokenizer" / "vocab.json").is_file()
    back = save_model(load_model(folder), tmp_path / "back.safetensors")
    assert_same_tensors(tensors_of(tiny_file), tensors_of(back))
    with safe_open(str(back), "pt") as f:
        assert f.metadata()["modelspec.architecture"].startswith("stable-diffusion-v")


def test_diffusers_folder_is_loadable_by_diffusers_itself(tiny_sd1, tmp_path):
    from diffusers import StableDiffusionPipeline

    model = load_model(tiny_sd1)
    folder = save_model(model, tmp_path / "pipeline")
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None)
    for name, ours in model.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], ours), name
    ids = pipe.tokenizer("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_trained_weights_are_what_gets_saved(tiny_sd1, tmp_path):
    model = load_model(tiny_sd1)
    with torch.no_grad():
        model.unet.conv_in.weight.add_(1.0)
        model.text_encoder.final_layer_norm.bias.add_(0.5)
    out = tensors_of(save_model(model, tmp_path / "trained.safetensors"))
    src = tensors_of(tiny_sd1)
    key = "model.diffusion_model.input_blocks.0.0.weight"
    assert torch.equal(out[key], src[key] + 1.0)
    te_key = "cond_stage_model.transformer.text_model.final_layer_norm.bias"
    assert torch.equal(out[te_key], src[te_key] + 0.5)


def test_extras_survive_untouched(tiny_sd2, tmp_path):
    src = tensors_of(tiny_sd2)
    model = load_model(tiny_sd2)
    assert "cond_stage_model.model.text_projection" in model.extras
    assert "cond_stage_model.model.transformer.resblocks.2.ln_1.weight" in model.extras  # unused last block
    src["model_ema.decay"] = torch.tensor(0.9999)
    src["alphas_cumprod"] = torch.linspace(0.99, 0.01, 1000)
    save_file(src, str(tmp_path / "with_extras.safetensors"))
    back = save_model(load_model(tmp_path / "with_extras.safetensors"), tmp_path / "back.safetensors")
    assert_same_tensors(src, tensors_of(back))


def with_ema_copy(tensors: dict) -> dict:
    """A real SD1 training checkpoint: LitEma's copy of every UNet weight, named by the LDM key without its
    dots after `model_ema.`, with values of its own (the EMA lags the live weights)."""
    ema = {"model_ema." + k[len("model."):].replace(".", ""): v + 0.01
           for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    counters = {"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(4711, dtype=torch.int32)}
    return {**tensors, **ema, **counters}


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_ema_weight_copies_survive_a_round_trip(tiny_sd1, tmp_path, suffix):
    src = with_ema_copy(tensors_of(tiny_sd1))
    assert "model_ema.diffusion_modelinput_blocks00weight" in src
    source = tmp_path / f"ema{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": src}, source)
    else:
        save_file(src, str(source))
    back = save_model(load_model(source), tmp_path / f"back{suffix}")
    assert_same_tensors(src, stored_tensors(back))


def test_sd1_text_encoder_without_text_model_level_is_accepted(tiny_sd1, tmp_path):
    src = tensors_of(tiny_sd1)
    short = {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
             for k, v in src.items()}
    save_file(short, str(tmp_path / "short.safetensors"))
    model = load_model(tmp_path / "short.safetensors")
    reference = load_model(tiny_sd1)
    for name, tensor in reference.text_encoder.state_dict().items():
        assert torch.equal(model.text_encoder.state_dict()[name], tensor), name


def test_external_vae_replaces_the_checkpoint_vae(tiny_sd1, tmp_path):
    from library.tiny import build_tiny

    donor = tensors_of(save_model(build_tiny("sd1", seed=99), tmp_path / "donor.safetensors"))
    bare = {k[len("first_stage_model."):]: v for k, v in donor.items() if k.startswith("first_stage_model.")}
    bare["loss.logvar"] = torch.zeros(())  # training leftovers real VAE files carry
    torch.save({"state_dict": bare}, tmp_path / "anime.vae.pt")
    save_file({k: v for k, v in bare.items() if not k.startswith("loss.")}, str(tmp_path / "anime.vae.safetensors"))
    for vae_file in ("anime.vae.pt", "anime.vae.safetensors"):
        model = load_model(tiny_sd1, vae=tmp_path / vae_file)
        out = tensors_of(save_model(model, tmp_path / f"baked-{vae_file}.safetensors"))
        for key, value in bare.items():
            if not key.startswith("loss."):
                assert torch.equal(out["first_stage_model." + key], value), key
        assert model.vae_source.name == vae_file


def test_external_vae_in_diffusers_naming(tiny_sd1, tmp_path):
    from library.tiny import build_tiny

    donor = build_tiny("sd1", seed=5).vae.state_dict()
    save_file(donor, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    model = load_model(tiny_sd1, vae=tmp_path / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(model.vae.state_dict()[k], v) for k, v in donor.items())


def test_wrong_vae_file_is_refused_with_the_key_named(tiny_sd1, tmp_path):
    save_file({"encoder.conv_in.weight": torch.zeros(3, 3, 3, 3)}, str(tmp_path / "broken.vae.safetensors"))
    with pytest.raises(UserError, match=r"broken\.vae\.safetensors.*missing"):
        load_model(tiny_sd1, vae=tmp_path / "broken.vae.safetensors")


def test_unknown_save_format_and_precision_are_user_errors(tiny_sd1, tmp_path):
    model = load_model(tiny_sd1)
    with pytest.raises(UserError, match="precision `fp8`"):
        save_model(model, tmp_path / "x.safetensors", precision="fp8")
    with pytest.raises(UserError, match=r"unknown model file type `\.safetensor`\. Did you mean `\.safetensors`"):
        save_model(model, tmp_path / "out.safetensor")  # a typo must not silently become a diffusers folder
    assert not (tmp_path / "out.safetensor").exists()


def test_saved_files_get_the_usual_permissions(tiny_sd1, tmp_path):
    import os
    old = os.umask(0o022)
    try:
        model = load_model(tiny_sd1)
        file = save_model(model, tmp_path / "m.safetensors")
        folder = save_model(model, tmp_path / "pipeline")
    finally:
        os.umask(old)
    assert file.stat().st_mode & 0o777 == 0o644  # readable by the WebUI running as another user
    assert folder.stat().st_mode & 0o777 == 0o755


def test_vae_from_a_diffusers_folder_and_with_old_attention_names(tiny_sd1, tmp_path):
    from library.tiny import build_tiny

    donor = build_tiny("sd1", seed=7)
    save_model(donor, tmp_path / "pipeline")
    model = load_model(tiny_sd1, vae=tmp_path / "pipeline")  # a pipeline folder: its vae/ is used
    assert all(torch.equal(model.vae.state_dict()[k], v) for k, v in donor.vae.state_dict().items())
    old_names = {k.replace("attentions.0.to_q.", "attentions.0.query.").replace("attentions.0.to_out.0.", "attentions.0.proj_attn."): v
                 for k, v in donor.vae.state_dict().items()}
    assert any(".query." in k for k in old_names)
    (tmp_path / "vae_only").mkdir()
    save_file(old_names, str(tmp_path / "vae_only" / "diffusion_pytorch_model.safetensors"))
    model = load_model(tiny_sd1, vae=tmp_path / "vae_only")  # diffusers < 0.14 names, as diffusers still accepts
    assert all(torch.equal(model.vae.state_dict()[k], v) for k, v in donor.vae.state_dict().items())


def test_save_is_atomic_on_failure(tiny_sd1, tmp_path, monkeypatch):
    model = load_model(tiny_sd1)
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous good checkpoint")
    import safetensors.torch

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", explode)
    with pytest.raises(RuntimeError):
        save_model(model, target)
    assert target.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp files left
