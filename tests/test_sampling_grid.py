"""Image grids for sample images and model comparisons."""

import pytest
from PIL import Image

from library.sampling.grid import PADDING, make_grid


def tiles(n, size=(32, 24)):
    return [Image.new("RGB", size, (40 * i, 0, 0)) for i in range(n)]


def test_images_are_laid_out_row_by_row():
    grid = make_grid(tiles(3), rows=2, cols=2)
    assert grid.size == (2 * 32 + 3 * PADDING, 2 * 24 + 3 * PADDING)
    assert grid.getpixel((PADDING + 32 + PADDING, PADDING)) == (40, 0, 0)  # second image: top right
    assert grid.getpixel((PADDING, PADDING + 24 + PADDING)) == (80, 0, 0)  # third image: bottom left


def test_labels_add_a_caption_strip_above_each_image_and_wrap():
    plain = make_grid(tiles(2), rows=1, cols=2)
    short = make_grid(tiles(2), rows=1, cols=2, labels=["a", "b"])
    wrapped = make_grid(tiles(2), rows=1, cols=2, labels=["a", "masterpiece, best quality, 1girl, autumn"])
    assert plain.width == short.width == wrapped.width
    assert plain.height < short.height < wrapped.height
    caption = short.crop((PADDING, PADDING, PADDING + 32, short.height - 24 - PADDING))
    assert caption.getextrema() != ((255, 255),) * 3  # something was written


def test_images_of_different_sizes_get_cells_of_the_largest():
    grid = make_grid([Image.new("RGB", (16, 16)), Image.new("RGB", (32, 48))], rows=1, cols=2)
    assert grid.size == (2 * 32 + 3 * PADDING, 48 + 2 * PADDING)


def test_too_many_images_or_a_wrong_label_count_is_an_error():
    with pytest.raises(ValueError):
        make_grid(tiles(5), rows=2, cols=2)
    with pytest.raises(ValueError):
        make_grid(tiles(2), rows=1, cols=2, labels=["only one"])
