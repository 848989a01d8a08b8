"""Image files as users have them: EXIF-rotated, transparent, CMYK, 16-bit, damaged, or not images at all."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from library.config import load_train_config
from library.data.dataset import build_training_data
from library.data.images import load_rgb, probe_image
from library.data.problems import Unusable
from library.errors import UserError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def halves(width=96, height=64) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def rotated_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    return save(halves(), path, quality=95, exif=exif)


def truncated(path: Path, image: Image.Image, fmt: str) -> Path:
    save(image, path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_exif_orientation_turns_size_and_pixels(tmp_path):
    path = rotated_jpeg(tmp_path / "a.jpg")
    assert probe_image(path) == (64, 96)
    pixels = np.asarray(load_rgb(path)).astype(int)
    assert pixels.shape == (96, 64, 3)
    assert pixels[10, 32, 0] > 200 and pixels[85, 32, 2] > 200  # the left (red) half is now on top


def test_transparency_is_composited_onto_white(tmp_path):
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    pixels = np.asarray(load_rgb(save(image, tmp_path / "a.png")))
    assert tuple(pixels[0, 0]) == RED and tuple(pixels[4, 4]) == (255, 255, 255)


def test_palette_transparency_and_grey_alpha_are_composited_too(tmp_path):
    grey = Image.new("LA", (4, 4), (0, 0))
    assert tuple(np.asarray(load_rgb(save(grey, tmp_path / "la.png")))[0, 0]) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    assert tuple(np.asarray(load_rgb(save(palette, tmp_path / "p.png", transparency=0)))[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(halves().convert("CMYK"), tmp_path / "a.jpg", quality=95)
    pixels = np.asarray(load_rgb(path)).astype(int)
    assert pixels.shape == (64, 96, 3)
    assert abs(pixels[32, 10] - RED).max() < 40 and abs(pixels[32, 80] - BLUE).max() < 40


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    path = save(Image.fromarray(levels), tmp_path / "a.png")
    assert Image.open(path).mode.startswith("I")
    assert list(np.asarray(load_rgb(path))[0, :, 0]) == [0, 128, 255, 4]


def test_damaged_and_foreign_files_are_unusable_with_a_reason(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(Unusable, match="not an image"):
        probe_image(tmp_path / "text.png")
    for name, fmt in (("t.png", "PNG"), ("t.jpg", "JPEG")):
        with pytest.raises(Unusable, match="truncated"):
            probe_image(truncated(tmp_path / name, halves(), fmt))


def mixed_folder(root: Path) -> Path:
    folder = root / "train" / "2_sks girl"
    rotated_jpeg(folder / "rotated.jpg")
    save(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), folder / "alpha.png")
    save(halves().convert("CMYK"), folder / "cmyk.jpg")
    save(Image.fromarray(np.full((64, 64), 40000, np.uint16)), folder / "deep.png")
    truncated(folder / "broken.png", halves(), "PNG")
    (folder / "fake.png").write_text("<html>")
    return root / "train"


def config(train_dir: Path):
    return load_train_config(["--train_data_dir", str(train_dir), "--resolution", "64", "--caption_extension",
                              ".txt"])


def test_unusable_files_are_listed_and_skipped(tmp_path):
    loaded = config(mixed_folder(tmp_path))
    data = build_training_data(loaded.datasets, loaded.train)
    assert sorted(item.path.name for item in data.items) == ["alpha.png", "cmyk.jpg", "deep.png", "rotated.jpg"]
    assert sorted(Path(p.split(": ")[0]).name for p in data.problems) == ["broken.png", "fake.png"]
    assert any("skipped 2 unusable" in line for line in data.describe())
    batch = data.load_batch(data.epoch_plan(0, seed=0)[0])
    assert batch.pixels.shape[1:] == (3, 64, 64)


def test_strict_data_stops_and_lists_every_unusable_file(tmp_path):
    loaded = config(mixed_folder(tmp_path))
    with pytest.raises(UserError) as error:
        build_training_data(loaded.datasets, loaded.train, strict_data=True)
    assert "broken.png" in str(error.value) and "fake.png" in str(error.value) and "strict_data" in str(error.value)


def test_an_image_damaged_after_the_build_stops_with_its_name(tmp_path):
    loaded = config(mixed_folder(tmp_path))
    data = build_training_data(loaded.datasets, loaded.train)
    for item in data.items:
        item.path.write_bytes(b"gone")
    plan = data.epoch_plan(0, seed=0)[0]
    with pytest.raises(UserError) as error:
        data.load_batch(plan)
    assert str(error.value).startswith(f"{data.items[plan.samples[0][0]].path}: cannot decode this image")
