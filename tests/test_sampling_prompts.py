"""kohya sample prompt files (.txt, .toml, .json) become generation requests; mistakes are named with file:line."""

import json

import pytest

from library.errors import UserError
from library.sampling.request import GenerationRequest, sampler_key
from library.sampling.sample_prompts import load_sample_prompts, parse_line


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_line_with_every_option(tmp_path):
    line = "1girl, autumn --n lowres, bad hands --w 512 --h 768 --d 114514 --l 11 --s 28 --ss euler"
    path = write(tmp_path, "p.txt", line + "\n")
    assert load_sample_prompts(path) == [GenerationRequest(
        "1girl, autumn", negative_prompt="lowres, bad hands", width=512, height=768, seed=114514, cfg_scale=11.0,
        steps=28, sampler="euler")]


def test_defaults_blank_lines_and_comments(tmp_path):
    path = write(tmp_path, "p.txt", "# samples\n\n  a cat  \n# a dog\n")
    assert load_sample_prompts(path, default_size=(640, 384), default_sampler="k_euler_a") == [
        GenerationRequest("a cat", width=640, height=384, steps=30, cfg_scale=7.5, seed=None, sampler="k_euler_a")]


def test_sizes_round_down_to_8_and_steps_are_clamped_as_in_kohya(tmp_path):
    path = write(tmp_path, "p.txt", "a --w 515 --h 20 --s 5000\nb --s 0\n")
    first, second = load_sample_prompts(path)
    assert (first.width, first.height, first.steps) == (512, 64, 1000)
    assert second.steps == 1


def test_options_are_case_insensitive_and_the_last_one_wins():
    assert parse_line("a --W 640 --w 768 --N ugly") == {"prompt": "a", "width": "768", "negative_prompt": "ugly"}


def test_every_mistake_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "p.txt", "good\n--\na --w wide\n\nb --ss pndm\nc --x 1\nd --g 3.5\n")
    with pytest.raises(UserError) as e:
        load_sample_prompts(path)
    message = str(e.value)
    assert f'{path}:3: width: expected an integer, got the string "wide"' in message
    assert message.startswith(f"4 problems in the sample prompt file {path}:")
    assert f"{path}:5: unknown or not yet supported sampler 'pndm'; available: euler_a (Euler a), euler" in message
    assert f"{path}:6: unknown option --x" in message
    assert f"{path}:7: option --g is for SDXL/SD3/FLUX/ControlNet" in message
    assert ":1:" not in message


def test_toml_subsets_share_the_prompt_table(tmp_path):
    path = write(tmp_path, "p.toml", """
[prompt]
negative_prompt = "lowres"
width = 512
height = 768
scale = 11
sample_steps = 28

[[prompt.subset]]
prompt = "1girl"
seed = 1

[[prompt.subset]]
prompt = "1boy"
seed = 2
width = 768
sample_sampler = "euler"
""")
    girl, boy = load_sample_prompts(path)
    assert girl == GenerationRequest("1girl", "lowres", 512, 768, 28, 11.0, 1, "euler_a")
    assert boy == GenerationRequest("1boy", "lowres", 768, 768, 28, 11.0, 2, "euler")


def test_toml_mistakes_point_at_the_subset(tmp_path):
    path = write(tmp_path, "p.toml", '[prompt]\nwidth = 512\n\n[[prompt.subset]]\nprompt = "a"\nsteps = 20\n')
    with pytest.raises(UserError, match=rf"{path}:4: unknown key 'steps'; did you mean 'sample_steps'\?"):
        load_sample_prompts(path)
    no_subsets = write(tmp_path, "q.toml", '[prompt]\nprompt = "a"\n')
    with pytest.raises(UserError, match=r"\[\[prompt.subset\]\]"):
        load_sample_prompts(no_subsets)


def test_json_lists_lines_or_tables(tmp_path):
    path = write(tmp_path, "p.json", json.dumps(
        ["a cat --s 10", {"prompt": "a dog", "negative_prompt": "cat", "seed": 7, "scale": 5}]))
    cat, dog = load_sample_prompts(path)
    assert (cat.prompt, cat.steps) == ("a cat", 10)
    assert dog == GenerationRequest("a dog", "cat", seed=7, cfg_scale=5.0)
    bad = write(tmp_path, "q.json", json.dumps([{"negative_prompt": "x"}, 3]))
    with pytest.raises(UserError) as e:
        load_sample_prompts(bad)
    assert "(item 1): every entry needs a `prompt`" in str(e.value)
    assert "(item 2): each entry is a prompt line" in str(e.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_sample_prompts(tmp_path / "none.txt")
    with pytest.raises(UserError, match=r"\.txt, \.toml or \.json"):
        load_sample_prompts(write(tmp_path, "p.yaml", "a"))


@pytest.mark.parametrize("name", ["euler_a", "Euler a", "k_euler_a", "EULER_A"])
def test_sampler_names_from_kohya_and_a1111(name):
    assert sampler_key(name) == "euler_a"


def test_requests_check_their_own_settings():
    with pytest.raises(UserError, match="multiple of 8"):
        GenerationRequest("a", width=500)
    with pytest.raises(UserError, match="steps"):
        GenerationRequest("a", steps=0)
    with pytest.raises(UserError, match="clip_skip"):
        GenerationRequest("a", clip_skip=0)
