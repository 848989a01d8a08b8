"""From image to tensor: resize filter, crop, the seeded augmentations (flip, random crop, colour), scaling."""

import numpy as np
import torch
from PIL import Image

from library.config import SubsetSpec
from library.data.buckets import Placement
from library.data.pixels import Augment, choose_augment, render, resize, to_batch

RAMP = np.tile(np.arange(0, 240, 2, dtype=np.uint8), (80, 1))
GRADIENT = Image.fromarray(np.stack([RAMP, np.full_like(RAMP, 90), 239 - RAMP], axis=-1))  # 120x80, red to blue
PLACEMENT = Placement((64, 64), (96, 64))  # resized to 96x64, cropped to 64x64


def pixels(augment=Augment(), interpolation=None) -> np.ndarray:
    return np.asarray(render(GRADIENT, PLACEMENT, interpolation, augment))


def resized() -> np.ndarray:
    return np.asarray(resize(GRADIENT, (96, 64), None))


def test_the_image_is_resized_to_cover_and_centre_cropped():
    assert np.array_equal(pixels(), resized()[:, 16:80])


def test_default_filter_is_area_when_shrinking_and_lanczos_when_enlarging():
    assert resize(GRADIENT, (60, 40), None).tobytes() == GRADIENT.resize((60, 40), Image.Resampling.BOX).tobytes()
    assert resize(GRADIENT, (240, 160), None).tobytes() == \
        GRADIENT.resize((240, 160), Image.Resampling.LANCZOS).tobytes()
    assert not np.array_equal(pixels(interpolation="nearest"), pixels())


def test_flip_mirrors_the_crop():
    assert np.array_equal(pixels(Augment(flip=True)), pixels()[:, ::-1])


def test_random_crop_offsets_stay_inside_and_follow_the_seed():
    subset = SubsetSpec(random_crop=True)
    crops = [choose_augment(subset, PLACEMENT, seed).crop for seed in range(50)]
    assert all(0 <= left <= 32 and top == 0 for left, top in crops)
    assert len(set(crops)) > 5
    assert crops == [choose_augment(subset, PLACEMENT, seed).crop for seed in range(50)]
    left, _ = crops[0]
    assert np.array_equal(pixels(Augment(crop=crops[0])), resized()[:, left:left + 64])


def test_without_augmentation_options_nothing_is_random():
    assert {choose_augment(SubsetSpec(), PLACEMENT, seed) for seed in range(20)} == {Augment()}


def test_color_aug_changes_about_a_third_of_the_samples_and_follows_the_seed():
    subset = SubsetSpec(color_aug=True)
    changed = [not np.array_equal(pixels(choose_augment(subset, PLACEMENT, seed)), pixels()) for seed in range(60)]
    assert 8 < sum(changed) < 32
    assert np.array_equal(pixels(choose_augment(subset, PLACEMENT, 3)), pixels(choose_augment(subset, PLACEMENT, 3)))


def test_batches_are_float_nchw_in_minus_one_to_one():
    image = render(GRADIENT, PLACEMENT, None, Augment())
    batch = to_batch([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == torch.float32 and batch.is_contiguous()
    expected = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(batch[0], expected) and torch.equal(batch[1], expected.flip(-1))
    assert to_batch([Image.new("RGB", (8, 8), (0, 255, 0))]).unique().tolist() == [-1.0, 1.0]
