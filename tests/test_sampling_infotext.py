"""A1111 infotext: the exact parameters text, and PNGs that carry it where the WebUI's PNG Info looks."""

from PIL import Image

from library.sampling.infotext import ModelIdentity, format_number, infotext, quote, read_infotext, save_png
from library.sampling.request import GenerationRequest

PROMPT = "masterpiece, best quality, 1girl, brown hair, green eyes, colorful, autumn"
NEGATIVE = "lowres, bad anatomy, bad hands, text, error"


def comparable_analysis_request(**changes) -> GenerationRequest:
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=512, height=768, steps=28, sampler="euler_a",
                    cfg_scale=11, seed=114514, clip_skip=2)
    return GenerationRequest(**{**settings, **changes})


def test_the_comparable_analysis_settings_read_as_in_a1111():
    text = infotext(comparable_analysis_request(), 114514, ModelIdentity("0123456789", "animefull-final"))
    assert text == (
        f"{PROMPT}\n"
        f"Negative prompt: {NEGATIVE}\n"
        "Steps: 28, Sampler: Euler a, CFG scale: 11, Seed: 114514, Size: 512x768, "
        "Model hash: 0123456789, Model: animefull-final, Clip skip: 2")


def test_optional_parts_are_left_out():
    request = comparable_analysis_request(negative_prompt="", clip_skip=1, sampler="euler", cfg_scale=7.5)
    assert infotext(request, 5, ModelIdentity()) == (
        f"{PROMPT}\nSteps: 28, Sampler: Euler, CFG scale: 7.5, Seed: 5, Size: 512x768")


def test_numbers_print_as_a1111_prints_them():
    assert [format_number(v) for v in (7, 7.0, 7.5, 11.25)] == ["7", "7", "7.5", "11.25"]


def test_values_with_commas_colons_or_newlines_are_json_quoted():
    assert quote("plain name") == "plain name"
    assert quote("v1, final") == '"v1, final"'
    assert quote("a:b") == '"a:b"'
    assert quote("日本, 語") == '"日本, 語"'  # kept readable, not \\u-escaped
    text = infotext(comparable_analysis_request(clip_skip=None), 1, ModelIdentity(name="my, model"))
    assert text.endswith('Size: 512x768, Model: "my, model"')


def test_model_identity_of_a_checkpoint_is_its_short_hash_and_stem(tiny_sd1):
    from library.models.hashes import model_hashes

    identity = ModelIdentity.of_file(tiny_sd1)
    assert identity == ModelIdentity(model_hashes(tiny_sd1).autov2, tiny_sd1.stem)
    assert len(identity.hash) == 10
    assert ModelIdentity.of_file(None) == ModelIdentity()


def png_chunk_types(path) -> list[bytes]:
    data, types, pos = path.read_bytes(), [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        types.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return types


def test_png_round_trip_in_a_text_chunk(tmp_path):
    text = infotext(comparable_analysis_request(), 114514, ModelIdentity("0123456789", "m"))
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "sub" / "a.png", text)
    assert read_infotext(path) == text
    assert b"tEXt" in png_chunk_types(path) and b"iTXt" not in png_chunk_types(path)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # written atomically, no temp file left


def test_a_japanese_prompt_goes_into_an_international_text_chunk(tmp_path):
    text = infotext(comparable_analysis_request(prompt="桜の木の下の少女, 春"), 1, ModelIdentity())
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "ja.png", text)
    assert read_infotext(path) == text
    assert b"iTXt" in png_chunk_types(path)


def test_a_png_without_infotext_reads_as_none(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_infotext(tmp_path / "plain.png") is None
