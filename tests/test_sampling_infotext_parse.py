"""Reading A1111 infotexts back (`parse_generation_parameters` rules) and regenerating their requests."""

import pytest
from PIL import Image

from library.errors import UserError
from library.sampling.infotext import (ModelIdentity, infotext, parse_infotext, read_infotext, request_from_infotext,
                                       save_png)
from library.sampling.request import GenerationRequest

SEED_PROMPT = "(((masterpiece))), ((best quality)), 1girl, [brown hair], (green eyes:1.3), colorful, autumn"
SEED_NEGATIVE = "lowres, bad anatomy, bad hands, text, error, missing fingers, (worst quality:1.4)"
MODEL = ModelIdentity("0123456789", "animefull-final")


def comparable(**changes) -> GenerationRequest:
    settings = dict(prompt=SEED_PROMPT, negative_prompt=SEED_NEGATIVE, width=512, height=768, steps=28,
                    sampler="euler_a", cfg_scale=11.0, seed=114514, clip_skip=2, ensd=31337)
    return GenerationRequest(**{**settings, **changes})


def round_trip(request: GenerationRequest) -> GenerationRequest:
    return request_from_infotext(infotext(request, request.seed, MODEL))


def test_the_comparable_analysis_settings_round_trip():
    request = comparable()
    text = infotext(request, 114514, MODEL)
    assert text.endswith("Steps: 28, Sampler: Euler a, CFG scale: 11, Seed: 114514, Size: 512x768, "
                         "Model hash: 0123456789, Model: animefull-final, Clip skip: 2, ENSD: 31337")
    assert request_from_infotext(text) == request
    params = parse_infotext(text)
    assert params["Size-1"] == "512" and params["Size-2"] == "768" and "Size" not in params
    assert params["Model hash"] == "0123456789" and params["CFG scale"] == "11" and params["ENSD"] == "31337"


@pytest.mark.parametrize("changes", [
    dict(prompt="1人の少女、桜、着物", negative_prompt="低品質、ぼやけた"),
    dict(prompt="masterpiece,\n1girl, solo\nautumn leaves", negative_prompt="lowres\nbad hands"),
    dict(sampler="dpmpp_2m", ensd=0, clip_skip=None, cfg_scale=7.5),
    dict(sampler="ddim", ensd=0, negative_prompt=""),
    dict(sampler="euler", ensd=0, prompt='a "quoted" word: with colon'),
])
def test_other_prompts_and_samplers_round_trip(changes):
    request = comparable(**changes)
    assert round_trip(request) == request


def test_a_japanese_prompt_round_trips_through_a_png(tmp_path):
    request = comparable(prompt="1人の少女、桜", negative_prompt="低品質")
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "a.png", infotext(request, request.seed, MODEL))
    assert request_from_infotext(read_infotext(path)) == request


def test_dpmpp_2m_writes_its_karras_schedule_and_no_ensd():
    text = infotext(comparable(sampler="DPM++ 2M"), 1, MODEL)
    assert "Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 11," in text and "ENSD" not in text


def test_a_last_line_with_fewer_than_three_pairs_is_prompt_text():
    params = parse_infotext("a cat\nNegative prompt: dog\nSteps: 20, Seed: 5")
    assert params["Prompt"] == "a cat" and params["Negative prompt"] == "dog\nSteps: 20, Seed: 5"
    assert "Steps" not in params and params["Clip skip"] == "1" and params["Schedule type"] == "Automatic"


def test_negative_prompt_lines_and_blank_lines_as_a1111_joins_them():
    params = parse_infotext("  a cat  \n\n on a mat\nNegative prompt:\n  ugly\n\nblurry\nSteps: 2, Seed: 3, Size: 8x16")
    assert params["Prompt"] == "a cat\n\non a mat"
    assert params["Negative prompt"] == "ugly\n\nblurry"  # empty lines are skipped only while the text is empty


def test_params_line_values():
    params = parse_infotext('p\nSteps: 20, Model: "v1, final", Lora hashes: "a: 0123, b: 4567", Empty: , '
                            'Hires upscale: 2, Odd: "no json, Sampler: Euler a , Seed: 1')
    assert params["Model"] == "v1, final" and params["Lora hashes"] == "a: 0123, b: 4567"
    assert "Empty" not in params and params["Hires upscale"] == "2"
    assert params["Odd"] == '"no json' and params["Sampler"] == "Euler a "  # unquoted values keep trailing spaces


def test_a_text_without_parameters_is_all_prompt():
    params = parse_infotext("just a prompt, with: a colon")
    assert params["Prompt"] == "just a prompt, with: a colon" and params["Negative prompt"] == ""


@pytest.mark.parametrize("label,schedule,key", [
    ("Euler a", None, "euler_a"), ("DPM++ 2M Karras", None, "dpmpp_2m"), ("DPM++ 2M", "Automatic", "dpmpp_2m"),
    ("DPM++ 2M", "Karras", "dpmpp_2m"), ("DDIM", None, "ddim"), ("Euler", "Uniform", "euler")])
def test_sampler_labels_old_and_new_resolve(label, schedule, key):
    extra = f", Schedule type: {schedule}" if schedule else ""
    assert request_from_infotext(f"p\nSteps: 20, Sampler: {label}{extra}, Seed: 1").sampler == key


@pytest.mark.parametrize("line", ["Steps: 20, Sampler: DPM++ 2M, Schedule type: Exponential, Seed: 1",
                                  "Steps: 20, Sampler: Euler a, Schedule type: Karras, Seed: 1",
                                  "Steps: 20, Sampler: LMS, Seed: 1", "Steps: many, Sampler: Euler, Seed: 1"])
def test_what_we_cannot_run_is_refused(line):
    with pytest.raises(UserError):
        request_from_infotext(f"p\n{line}")
