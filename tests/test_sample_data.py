"""The sample dataset: kohya layout, captions that describe the pictures, determinism, safe overwriting."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from library.errors import UserError
from library.sample_data import (
    BACKGROUND_COLOURS,
    EYE_COLOURS,
    HAIR_COLOURS,
    SHIRT_COLOURS,
    SIZES,
    write_sample_dataset,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("sample") / "out", seed=0)


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_kohya_layout(dataset):
    assert dataset.train_dir == dataset.root / "train" / "10_sks girl"
    assert dataset.reg_dir == dataset.root / "reg" / "1_girl"
    train_images = sorted(p.name for p in dataset.train_dir.glob("*.png"))
    assert train_images == [f"{i:04d}.png" for i in range(13)]
    assert len(list(dataset.reg_dir.glob("*.png"))) == len(list(dataset.reg_dir.glob("*.txt"))) == dataset.reg == 4
    assert dataset.meta_file == dataset.root / "meta_cap.json"


def test_some_training_images_have_no_caption_file(dataset):
    uncaptioned = [p for p in dataset.train_dir.glob("*.png") if not p.with_suffix(".txt").exists()]
    assert len(uncaptioned) == dataset.uncaptioned == 3
    assert len(list(dataset.train_dir.glob("*.txt"))) == dataset.captioned == 10


def test_train_captions_lead_with_the_instance_token(dataset):
    for txt in dataset.train_dir.glob("*.txt"):
        tags = txt.read_text().split(", ")
        assert tags[:3] == ["sks girl", "1girl", "solo"]
        assert len([t for t in tags if t in ("long hair", "short hair")]) == 1


def test_class_captions_have_no_instance_token(dataset):
    for txt in dataset.reg_dir.glob("*.txt"):
        caption = txt.read_text()
        assert caption.startswith("1girl, solo, ")
        assert "sks" not in caption


def test_caption_colours_are_in_the_picture(dataset):
    """Each hair, eye, shirt and plain-background tag names a colour drawn in that image."""
    tables = {" hair": HAIR_COLOURS, " eyes": EYE_COLOURS, " shirt": SHIRT_COLOURS}
    for txt in [*dataset.train_dir.glob("*.txt"), *dataset.reg_dir.glob("*.txt")]:
        image = Image.open(txt.with_suffix(".png"))
        colours = {rgb for _, rgb in image.getcolors(maxcolors=1 << 16)}
        for tag in txt.read_text().split(", "):
            for suffix, table in tables.items():
                if tag.endswith(suffix) and tag[: -len(suffix)] in table:
                    assert table[tag[: -len(suffix)]] in colours, (txt, tag)
            if tag.endswith(" background") and tag[: -len(" background")] in BACKGROUND_COLOURS:
                assert image.getpixel((0, 0)) == BACKGROUND_COLOURS[tag[: -len(" background")]], (txt, tag)
            if tag == "gradient background":
                assert image.getpixel((0, 0)) != image.getpixel((0, image.height - 1)), txt


def test_images_are_rgb_in_mixed_aspect_ratios(dataset):
    sizes = set()
    for png in [*dataset.train_dir.glob("*.png"), *dataset.reg_dir.glob("*.png")]:
        with Image.open(png) as image:
            assert image.mode == "RGB"
            sizes.add(image.size)
    assert sizes == set(SIZES)


def test_fine_tune_metadata_covers_the_training_images(dataset):
    meta = json.loads(dataset.meta_file.read_text())
    assert sorted(meta) == sorted(p.relative_to(dataset.root).as_posix() for p in dataset.train_dir.glob("*.png"))
    for key, entry in meta.items():
        image = dataset.root / key
        assert entry["image_size"] == list(Image.open(image).size)
        assert "sks girl" in entry["caption"]
        txt = image.with_suffix(".txt")
        if txt.exists():
            assert entry["tags"] == txt.read_text()
        else:
            assert "tags" not in entry


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(dataset, tmp_path):
    again = write_sample_dataset(tmp_path / "again", seed=0)
    assert all_files(again.root) == all_files(dataset.root)
    other = write_sample_dataset(tmp_path / "other", seed=1)
    assert all_files(other.root).keys() == all_files(dataset.root).keys()
    assert (other.train_dir / "0000.txt").read_text() != (dataset.train_dir / "0000.txt").read_text()


def test_refuses_a_folder_with_other_files_and_writes_nothing(tmp_path):
    (tmp_path / "my_photos").mkdir()
    (tmp_path / "my_photos" / "holiday.png").write_bytes(b"precious")
    with pytest.raises(UserError, match="not empty"):
        write_sample_dataset(tmp_path / "my_photos")
    assert [p.name for p in (tmp_path / "my_photos").iterdir()] == ["holiday.png"]


def test_refuses_a_file_as_target(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        write_sample_dataset(tmp_path / "file")


def test_rewrites_an_earlier_sample_dataset_and_keeps_files_it_does_not_own(tmp_path):
    first = write_sample_dataset(tmp_path / "out", seed=1)
    extra = first.train_dir / "my_extra.png"
    extra.write_bytes(b"mine")
    write_sample_dataset(tmp_path / "out", seed=2)
    assert extra.read_bytes() == b"mine"
    reference = write_sample_dataset(tmp_path / "reference", seed=2)
    rewritten = all_files(first.root)
    del rewritten["train/10_sks girl/my_extra.png"]
    assert rewritten == all_files(reference.root)


def test_command_line_writes_and_summarises(tmp_path):
    out = tmp_path / "quickstart"
    done = run_cli(str(out), "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    assert "10 captioned and 3 uncaptioned" in done.stdout
    assert all_files(out) == all_files(write_sample_dataset(tmp_path / "api", seed=3).root)


def test_command_line_reports_a_refusal_without_traceback(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    done = run_cli(str(tmp_path / "busy"))
    assert done.returncode == 1
    assert "not empty" in done.stderr and "Traceback" not in done.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "library.sample_data", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_concept_wears_the_novel_star_which_no_caption_names(dataset):
    from library.world.figures import STAR

    def has_star(path: Path) -> bool:
        return STAR in {colour for _, colour in Image.open(path).convert("RGB").getcolors(maxcolors=100_000)}

    assert all(has_star(p) for p in dataset.train_dir.glob("*.png"))
    assert not any(has_star(p) for p in dataset.reg_dir.glob("*.png"))
    captions = [p.read_text() for p in dataset.root.rglob("*.txt")] + [dataset.meta_file.read_text()]
    assert not any("star" in caption for caption in captions)
