"""Aspect-ratio buckets as kohya makes them: candidates, nearest aspect ratio, cover-and-crop, no-upscale."""

from collections import Counter

from library.config import DatasetSpec
from library.data.buckets import (BucketRule, Placement, bucket_resolutions, bucket_table, cover, crop_origin,
                                  nearest_bucket, own_bucket)

SD15 = bucket_resolutions((512, 512), 256, 1024, 64)


def test_candidates_keep_the_area_and_step_between_min_and_max():
    assert (512, 512) in SD15 and (384, 640) in SD15 and (640, 384) in SD15 and (256, 1024) in SD15
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 and 256 <= min(w, h) for w, h in SD15)
    assert SD15 == sorted(SD15) and len(SD15) == len(set(SD15))
    assert {(h, w) for w, h in SD15} == set(SD15)


def test_kohya_sd15_bucket_list():
    landscape = [(w, h) for w, h in SD15 if w > h]
    assert landscape == [(576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256),
                         (1024, 256)]


def test_an_image_goes_to_the_nearest_aspect_ratio_and_is_resized_to_cover_it():
    bucket = nearest_bucket((1000, 1500), SD15)
    assert bucket == (384, 640)
    assert cover((1000, 1500), bucket) == (427, 640)  # height fits, width is cropped
    assert cover((3000, 1000), (640, 384)) == (1152, 384)


def test_an_image_of_a_bucket_size_uses_that_bucket():
    assert nearest_bucket((448, 576), SD15) == (448, 576)


def test_small_images_are_enlarged_into_their_bucket():
    assert cover((100, 100), (512, 512)) == (512, 512)


def test_no_upscale_keeps_small_images_and_rounds_the_bucket_down():
    assert own_bucket((300, 200), 512 * 512, 64) == Placement((256, 192), (300, 200))


def test_no_upscale_shrinks_large_images_to_the_area():
    placement = own_bucket((2000, 1000), 512 * 512, 64)
    # rounding the height to the steps keeps 2:1 exactly; rounding the width would give 704x320
    assert placement == Placement((640, 320), (640, 320))


def test_no_upscale_gives_a_zero_side_for_images_under_one_step():
    assert 0 in own_bucket((40, 300), 512 * 512, 64).bucket


def test_the_crop_is_centred():
    assert crop_origin(Placement((384, 640), (427, 640))) == (21, 0)


def test_rule_moves_min_and_max_onto_the_steps_as_kohya():
    spec = DatasetSpec("dreambooth", (), resolution=(512, 512), enable_bucket=True, min_bucket_reso=300,
                       max_bucket_reso=1000, bucket_reso_steps=64)
    rule = BucketRule.of(spec)
    assert (rule.min_reso, rule.max_reso) == (256, 1024)


def test_without_buckets_every_image_covers_the_resolution():
    rule = BucketRule((512, 512), enabled=False)
    assert rule.place((1200, 800), []) == Placement((512, 512), (768, 512))


def test_with_buckets_the_rule_uses_the_nearest_candidate():
    rule = BucketRule((512, 512), enabled=True, min_reso=256, max_reso=1024, steps=64)
    assert rule.place((1200, 800), rule.candidates()) == Placement((640, 384), (640, 427))


def test_bucket_table_lists_samples_per_bucket_like_kohya():
    lines = bucket_table(Counter({(512, 512): 30, (384, 640): 12}), [0.0, 0.1])
    assert lines == ["bucket 0: resolution (384, 640), count: 12", "bucket 1: resolution (512, 512), count: 30",
                     "mean ar error (without repeats): 0.0500"]
