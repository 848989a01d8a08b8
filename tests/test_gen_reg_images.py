"""gen_reg_images.py: prompt mode, --from_png, class mode resume, word-frequency mode, compare, bad input."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from library.generation.cli import main
from library.generation.prompts_file import COMPARABLE_ANALYSIS, load_prompts, parse_prompt_blocks
from library.models.hashes import model_hashes
from library.sampling.grid import PADDING
from library.sampling.infotext import parse_infotext, read_infotext, request_from_infotext

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--width", "64", "--height", "64", "--steps", "2"]


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_prompt_mode_writes_infotexts_that_parse_back_to_the_settings(tiny_sd1, tmp_path):
    out = tmp_path / "out"
    argv = ["--model", str(tiny_sd1), "--prompt", "a (cat:1.2)", "--negative_prompt", "blurry", *SMALL,
            "--sampler", "Euler a", "--cfg_scale", "5.5", "--seed", "42", "--ensd", "31337", "--clip_skip", "2",
            "--batch_size", "2", "--n_iter", "1", "--outdir", str(out)]
    assert main(argv) == 0
    assert pngs(out) == ["00000-42.png", "00001-43.png"]
    params = parse_infotext(read_infotext(out / "00001-43.png"))
    assert params["Prompt"] == "a (cat:1.2)" and params["Negative prompt"] == "blurry"
    assert (params["Steps"], params["Sampler"], params["CFG scale"], params["Seed"]) == ("2", "Euler a", "5.5", "43")
    assert (params["Size-1"], params["Size-2"], params["Clip skip"], params["ENSD"]) == ("64", "64", "2", "31337")
    assert params["Model hash"] == model_hashes(tiny_sd1).autov2 and params["Model"] == "tiny-sd1"
    request = request_from_infotext(read_infotext(out / "00000-42.png"))
    assert (request.steps, request.cfg_scale, request.seed, request.sampler, request.ensd) == (2, 5.5, 42, "euler_a",
                                                                                                31337)
    assert main([*argv[:-2], "--n_iter", "1", "--batch_size", "1", "--seed", "7", "--outdir", str(out)]) == 0
    assert pngs(out)[-1] == "00002-7.png"  # the counter continues


def test_from_png_regenerates_the_same_bytes_and_flags_override(tiny_sd1, tmp_path):
    first, again, changed = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["--model", str(tiny_sd1), "--prompt", "a dog", *SMALL, "--seed", "5", "--sampler", "dpmpp_2m",
                 "--outdir", str(first)]) == 0
    source = first / "00000-5.png"
    assert main(["--model", str(tiny_sd1), "--from_png", str(source), "--outdir", str(again)]) == 0
    assert (again / "00000-5.png").read_bytes() == source.read_bytes()
    assert main(["txt2img", "--model", str(tiny_sd1), "--from_png", str(source), "--steps", "3",
                 "--outdir", str(changed)]) == 0
    params = parse_infotext(read_infotext(changed / "00000-5.png"))
    assert (params["Steps"], params["Sampler"], params["Schedule type"], params["Prompt"]) == ("3", "DPM++ 2M",
                                                                                              "Karras", "a dog")


def test_class_mode_resumes_without_duplicates(tiny_sd1, tmp_path):
    out = tmp_path / "reg" / "1_girl"
    base = ["--model", str(tiny_sd1), "--class_prompt", "1girl", *SMALL, "--outdir", str(out)]
    assert main([*base, "--count", "3"]) == 0
    first = pngs(out)
    assert len(first) == 3
    stamps = {name: (out / name).stat().st_mtime_ns for name in first}
    assert main([*base, "--count", "5", "--batch_size", "2"]) == 0
    names = pngs(out)
    assert len(names) == 5 and names[:3] == first
    assert all((out / name).stat().st_mtime_ns == stamps[name] for name in first)  # not regenerated
    seeds = [int(name[:-4].split("-")[1]) for name in names]
    assert seeds == list(range(seeds[0], seeds[0] + 5))
    assert all((out / name).with_suffix(".txt").read_text().strip() == "1girl" for name in names)
    assert parse_infotext(read_infotext(out / names[4]))["Prompt"] == "1girl"
    assert main([*base, "--count", "5"]) == 0 and pngs(out) == names  # nothing left to do


def test_class_mode_refuses_another_base_seed_for_the_same_folder(tiny_sd1, tmp_path, capsys):
    base = ["--model", str(tiny_sd1), "--class_prompt", "1boy", *SMALL, "--outdir", str(tmp_path)]
    assert main([*base, "--count", "1", "--seed", "10"]) == 0
    assert main([*base, "--count", "2", "--seed", "99"]) == 2
    assert "base seed 10" in capsys.readouterr().err


def test_prompt_blocks_skip_comments_and_split_at_blank_lines():
    text = "# comment\n\na cat\nNegative prompt: ugly\nSteps: 3, Sampler: Euler, Seed: 1, Size: 64x128\n\n\n" \
           "# another\ndog\nSteps: 4, CFG scale: 9, Seed: -1\n"
    cat, dog = parse_prompt_blocks(text)
    assert (cat.prompt, cat.negative_prompt, cat.steps, cat.sampler, cat.width, cat.height) == ("a cat", "ugly", 3,
                                                                                                "euler", 64, 128)
    assert (dog.prompt, dog.steps, dog.cfg_scale, dog.seed) == ("dog", 4, 9.0, -1)


def test_the_shipped_comparable_analysis_prompts_have_the_seed_settings():
    assert COMPARABLE_ANALYSIS.is_file() and "shared" not in COMPARABLE_ANALYSIS.parts
    requests = load_prompts()
    assert len(requests) == 4 and "(((((masterpiece" in requests[2].prompt
    for r in requests:
        assert (r.steps, r.sampler, r.cfg_scale, r.seed, r.width, r.height, r.ensd) == (28, "euler_a", 11.0, 114514,
                                                                                        512, 768, 31337)


def test_compare_writes_a_labelled_grid_and_an_html_page(tiny_sd1, tiny_sd2, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--models", str(tiny_sd1), str(tiny_sd2), "--outdir", str(out),
                 "--size_override", "64x64", "--steps_override", "2"]) == 0
    rows, cols = 4, 2
    with Image.open(out / "grid.png") as grid:
        width, height = grid.size
    assert width == cols * (64 + PADDING) + PADDING
    assert (height - PADDING) % rows == 0 and (height - PADDING) // rows >= 64 + PADDING
    page = (out / "index.html").read_text()
    hashes = [model_hashes(p).autov2 for p in (tiny_sd1, tiny_sd2)]
    assert all(h in page for h in hashes) and hashes[0] != hashes[1]
    cells = sorted(out.glob("*/*.png"))
    assert len(cells) == rows * cols
    for cell in cells:
        text = read_infotext(cell)
        assert html.escape(text) in page and cell.relative_to(out).as_posix() in page
        params = parse_infotext(text)
        assert (params["Steps"], params["Seed"], params["CFG scale"], params["ENSD"], params["Size-1"]) == (
            "2", "114514", "11", "31337", "64")
    assert {parse_infotext(read_infotext(c))["Model hash"] for c in cells} == set(hashes)


def test_compare_with_a_prompts_file_gives_every_model_the_same_random_seed(tiny_sd1, tiny_sd2, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\nSteps: 2, Sampler: Euler, Seed: -1, Size: 64x64\n")
    out = tmp_path / "cmp"
    assert main(["compare", "--models", str(tiny_sd1), str(tiny_sd2), "--prompts", str(prompts),
                 "--outdir", str(out)]) == 0
    seeds = {parse_infotext(read_infotext(c))["Seed"] for c in out.glob("*/*.png")}
    assert len(seeds) == 1 and seeds != {"-1"}
    with Image.open(out / "grid.png") as grid:
        assert grid.width == 2 * (64 + PADDING) + PADDING


@pytest.mark.parametrize("argv, message", [
    (["--model", "missing.safetensors", "--prompt", "x"], "model not found: missing.safetensors"),
    (["--model", "MODEL", "--prompt", "x", "--sampler", "LMS"], "unknown or not yet supported sampler 'LMS'"),
    (["--model", "MODEL", "--class_prompt", "x"], "--count N"),
    (["--model", "MODEL", "--from_png", "nope.png"], "PNG not found"),
    (["compare", "--models", "MODEL", "missing.safetensors", "--size_override", "64x64"], "model not found"),
    (["compare", "--models", "MODEL", "--size_override", "64"], "--size_override must look like"),
    (["compare", "--models", "MODEL", "--prompts", "nope.txt"], "cannot read the prompts file"),
])
def test_bad_input_exits_2_with_a_message(tiny_sd1, tmp_path, capsys, argv, message):
    argv = [str(tiny_sd1) if a == "MODEL" else a for a in argv]
    assert main([*argv, "--outdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.png"))


def test_the_script_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "gen_reg_images.py"), "--model", str(tmp_path / "none"),
                             "--prompt", "x", "--sampler", "nope"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "unknown or not yet supported sampler" in result.stderr
    assert "Traceback" not in result.stderr


def test_wordfreq_mode_redoes_only_what_an_interruption_lost(tiny_sd1, tmp_path):
    words, out = tmp_path / "words.txt", tmp_path / "out"
    words.write_text("cat 5\ndog 5\n")
    argv = ["--model", str(tiny_sd1), "--wordfreq", str(words), "--count", "3", *SMALL, "--outdir", str(out)]
    assert main(argv) == 0
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lost = out / json.loads(lines[-1])["file"]
    manifest.write_text("\n".join(lines[:-1]) + '\n{"index": 2, "wo')  # killed while appending
    lost.unlink()
    kept = {name: (out / name).stat().st_mtime_ns for name in pngs(out)}
    assert main(argv[:-2] + ["--outdir", str(out)]) == 0  # no --seed: the folder's base seed is continued
    assert lost.is_file() and all((out / n).stat().st_mtime_ns == t for n, t in kept.items())
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.endswith("}")]
    assert sorted(r["index"] for r in records) == [0, 1, 2]


def test_wordfreq_mode_draws_words_in_proportion_to_their_counts(tiny_sd1, tmp_path):
    from library.regularization import chi_square, load_word_list

    words, out = tmp_path / "words.txt", tmp_path / "out"
    words.write_text("cat 70\ndog 20\nbird 10\n")
    argv = ["--model", str(tiny_sd1), "--wordfreq", str(words), "--count", "60", "--seed", "3", "--steps", "1",
            "--width", "64", "--height", "64", "--outdir", str(out)]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    counts = {w: sum(r["word"] == w for r in records) for w in ("cat", "dog", "bird")}
    assert sum(counts.values()) == 60 and len({r["file"] for r in records}) == 60  # each image once
    _, _, p_value = chi_square(counts, load_word_list(str(words)))
    assert p_value > 0.001, counts
    assert all((out / r["file"]).with_suffix(".txt").read_text().strip() == r["word"] for r in records[:5])
