"""The similarity core: the reference tool's numbers, its symmetries, every input layout, the in-memory API."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from library.models.sd_model import load_model
from library.models.unet_keys import ldm_key
from library.similarity.blocks import BLOCK_SETS
from library.similarity.compare import compare_files
from library.similarity.state_dicts import probe_state_dict, similarity_of_probe, similarity_of_weights
from library.tiny import write_tiny

REFERENCE_BLOCKS = [f"OUT{n:02d}" for n in range(3, 11)]
KEY = "model.diffusion_model.output_blocks.{}.1.transformer_blocks.0.attn1.to_{}.weight"
EXTENDED_BLOCKS = ["IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "MID", *(f"OUT{n:02d}" for n in range(3, 12))]


def reference_tool(path_a, path_b, seed=114514):
    """The community tool, transcribed step by step: global seed, fp32 nn.Linear copies, the einsum quirk."""
    model_a, model_b = load_file(str(path_a)), load_file(str(path_b))

    def attention(model, n, x):  # the tool's cal_cross_attn; the fresh layers' init draws from the global RNG
        hidden_dim, embed_dim = model[KEY.format(n, "q")].shape
        linears = []
        for p in "qkv":
            linear = torch.nn.Linear(hidden_dim, embed_dim, bias=False)
            linear.load_state_dict({"weight": model[KEY.format(n, p)]})
            linears.append(linear)
        q, k, v = (linear(x) for linear in linears)
        return torch.einsum("ik, jk -> ik", F.softmax(torch.einsum("ij, kj -> ik", q, k), dim=-1), v)

    with torch.no_grad():
        torch.manual_seed(seed)
        inputs, attn_a = {}, {}
        for n in range(3, 11):
            hidden_dim, embed_dim = model_a[KEY.format(n, "q")].shape
            inputs[n] = torch.randn([embed_dim, hidden_dim])
            attn_a[n] = attention(model_a, n, inputs[n])
        sims = [torch.mean(torch.cosine_similarity(attn_a[n], attention(model_b, n, inputs[n]))) for n in range(3, 11)]
        return (torch.mean(torch.stack(sims)) * 1e2).item()


def perturbed(src, out, scale, seed):
    """A stand-in for a fine-tune of `src`: every UNet weight plus seeded noise of `scale` times its spread."""
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(str(src))
    for key, t in tensors.items():
        if key.startswith("model.diffusion_model.") and t.is_floating_point() and t.numel() > 1:
            tensors[key] = t + scale * t.std() * torch.randn(t.shape, generator=generator)
    save_file(tensors, str(out))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd1):
    """tiny SD1 (seed 1) as every layout, two fine-tunes of it, an unrelated SD1 and an fp16 copy."""
    d = tmp_path_factory.mktemp("similarity")
    return {
        "base": tiny_sd1,
        "ckpt": write_tiny(d / "base.ckpt", "sd1", seed=1),
        "folder": write_tiny(d / "base_diffusers", "sd1", seed=1),
        "fp16": write_tiny(d / "base-fp16.safetensors", "sd1", seed=1, precision="fp16"),
        "tuned": perturbed(tiny_sd1, d / "tuned.safetensors", 0.2, seed=5),
        "tuned_more": perturbed(tiny_sd1, d / "tuned_more.safetensors", 0.5, seed=6),
        "other": write_tiny(d / "other.safetensors", "sd1", seed=7),
    }


def similarity(base, other, **kw):
    return compare_files(base, [other], **kw).results[0].similarity


def test_matches_the_reference_tool_exactly(models):
    for name in ("tuned", "tuned_more", "other"):
        assert similarity(models["base"], models[name]).similarity == pytest.approx(
            reference_tool(models["base"], models[name]), abs=1e-6)


def test_a_model_against_itself_is_100_and_closer_models_score_higher(models):
    assert similarity(models["base"], models["base"]).similarity == pytest.approx(100, abs=1e-6)
    tuned, tuned_more = similarity(models["base"], models["tuned"]), similarity(models["base"], models["tuned_more"])
    assert 100 > tuned.similarity > tuned_more.similarity > 50
    assert list(tuned.blocks) == REFERENCE_BLOCKS
    assert tuned.similarity == pytest.approx(sum(tuned.blocks.values()) / 8, abs=1e-4)


def test_swapping_base_and_other_gives_the_same_number(models):
    forward = similarity(models["base"], models["other"]).similarity
    assert similarity(models["other"], models["base"]).similarity == pytest.approx(forward, abs=1e-5)


def test_the_seed_changes_the_random_inputs(models):
    default = similarity(models["base"], models["tuned"]).similarity
    assert similarity(models["base"], models["tuned"], seed=1).similarity != default


def test_fp16_weights_are_promoted_to_fp32(models):
    assert similarity(models["base"], models["fp16"]).similarity == pytest.approx(100, abs=1e-2)
    # as base too: the fp16 rounding moves the number by far less than the tuning does (0.05 points)
    assert similarity(models["fp16"], models["tuned"]).similarity == pytest.approx(
        similarity(models["base"], models["tuned"]).similarity, abs=0.05)


def test_ckpt_and_diffusers_folder_give_the_safetensors_number(models):
    expected = similarity(models["base"], models["tuned"]).similarity
    for layout in ("ckpt", "folder"):
        assert similarity(models[layout], models["tuned"]).similarity == pytest.approx(expected, abs=1e-6)
        assert similarity(models["tuned"], models[layout]).similarity == pytest.approx(
            similarity(models["tuned"], models["base"]).similarity, abs=1e-6)


def test_sd2_models_compare_like_sd1(tiny_sd2, tmp_path):
    tuned = perturbed(tiny_sd2, tmp_path / "sd2-tuned.safetensors", 0.2, seed=3)
    assert similarity(tiny_sd2, tiny_sd2).similarity == pytest.approx(100, abs=1e-6)
    assert similarity(tiny_sd2, tuned).similarity == pytest.approx(reference_tool(tiny_sd2, tuned), abs=1e-6)
    assert compare_files(tiny_sd2, [tuned]).warnings == []


def test_extended_blocks_report_each_block_in_order(models):
    result = similarity(models["base"], models["tuned"], blocks="extended")
    assert list(result.blocks) == EXTENDED_BLOCKS
    assert all(0 < v < 100 for v in result.blocks.values())
    # the reference blocks draw their inputs after the input and middle blocks here, so their values differ
    assert result.blocks["OUT03"] != similarity(models["base"], models["tuned"]).blocks["OUT03"]


def test_diffusers_names_of_the_blocks_map_to_their_ldm_names():
    up_block_types = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    for block in BLOCK_SETS["extended"]:
        for diffusers, ldm in zip(block.diffusers_keys(), block.ldm_keys()):
            assert ldm_key(diffusers, 2, up_block_types) == ldm


def test_state_dicts_in_either_layout_give_the_file_number(models):
    expected = similarity(models["base"], models["tuned"], blocks="extended")
    base, tuned = load_file(str(models["base"])), load_file(str(models["tuned"]))
    assert similarity_of_weights(base, tuned, blocks="extended") == expected
    unet = load_model(models["base"]).unet  # the trainer's UNet, diffusers keys
    probe = probe_state_dict(unet.state_dict(), blocks="extended")
    assert similarity_of_probe(probe, tuned).similarity == pytest.approx(expected.similarity, abs=1e-6)
    unet.load_state_dict(load_model(models["tuned"]).unet.state_dict())  # a later state of the same module
    assert similarity_of_probe(probe, unet.state_dict()).similarity == pytest.approx(expected.similarity, abs=1e-6)


def test_the_in_memory_api_leaves_the_global_rng_alone(models):
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    similarity_of_weights(load_file(str(models["base"])), load_file(str(models["tuned"])))
    assert torch.equal(torch.rand(1), expected)


def test_matrix_rows_use_their_model_as_base(models):
    paths = [models["base"], models["tuned"], models["other"]]
    report = compare_files(paths[0], paths[1:], matrix=True)
    assert [report.matrix[i][i] for i in range(3)] == pytest.approx([100] * 3, abs=1e-6)
    for i, j in ((1, 2), (2, 0)):
        assert report.matrix[i][j] == pytest.approx(reference_tool(paths[i], paths[j]), abs=1e-6)
    assert [r.similarity.similarity for r in report.results] == report.matrix[0][1:]
