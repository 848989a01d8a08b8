"""Aspect-ratio buckets as kohya makes them, so a dataset trains at the same sizes with either tool.

With bucketing, the candidate sizes keep the area of `resolution` or less, with sides between min and max
bucket reso in `bucket_reso_steps`; an image goes to the candidate nearest its aspect ratio, is resized to
cover it and cropped. With `bucket_no_upscale` the bucket comes from the image itself: shrunk to the area
if larger, rounded down to the steps, never enlarged. Without bucketing every image covers `resolution`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from ..config.dataset_spec import DatasetSpec

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Placement:
    """Where one image goes: resized to `resized`, then cropped to `bucket`."""

    bucket: Size
    resized: Size


@dataclass(frozen=True)
class BucketRule:
    """The bucket settings of one dataset, with min/max moved onto the steps as kohya does."""

    resolution: Size
    enabled: bool = False
    min_reso: int = 256
    max_reso: int = 1024
    steps: int = 64
    no_upscale: bool = False

    @classmethod
    def of(cls, spec: DatasetSpec) -> BucketRule:
        steps = spec.bucket_reso_steps
        low = spec.min_bucket_reso - spec.min_bucket_reso % steps
        high = spec.max_bucket_reso + (-spec.max_bucket_reso) % steps
        return cls(spec.resolution, spec.enable_bucket, low, high, steps, spec.bucket_no_upscale)

    def candidates(self) -> list[Size]:
        return bucket_resolutions(self.resolution, self.min_reso, self.max_reso, self.steps)

    def place(self, size: Size, candidates: list[Size]) -> Placement:
        """`candidates` is `self.candidates()`, computed once per dataset rather than once per image."""
        if not self.enabled:
            return Placement(self.resolution, cover(size, self.resolution))
        if self.no_upscale:
            return own_bucket(size, self.resolution[0] * self.resolution[1], self.steps)
        bucket = nearest_bucket(size, candidates)
        return Placement(bucket, cover(size, bucket))


def bucket_resolutions(resolution: Size, min_size: int, max_size: int, steps: int) -> list[Size]:
    """kohya's candidates: the square of the area, and for each width in steps the tallest height that
    keeps the area (both orientations); sorted."""
    area = resolution[0] * resolution[1]
    side = int(math.sqrt(area) // steps) * steps
    sizes = {(side, side)}
    for width in range(min_size, max_size + 1, steps):
        height = min(max_size, area // width // steps * steps)
        if height >= min_size:
            sizes |= {(width, height), (height, width)}
    return sorted(sizes)


def nearest_bucket(size: Size, candidates: list[Size]) -> Size:
    """The candidate equal to `size`, else the first with the nearest aspect ratio."""
    if size in candidates:
        return size
    ratio = size[0] / size[1]
    return min(candidates, key=lambda c: abs(c[0] / c[1] - ratio))


def cover(size: Size, bucket: Size) -> Size:
    """The size that keeps the aspect ratio and covers `bucket` with one side equal (rounded half up)."""
    width, height = size
    scale = bucket[1] / height if width / height > bucket[0] / bucket[1] else bucket[0] / width
    return int(width * scale + 0.5), int(height * scale + 0.5)


def own_bucket(size: Size, max_area: int, steps: int) -> Placement:
    """bucket_no_upscale: shrink to `max_area` if larger (rounding the side whose rounding keeps the aspect
    ratio best), then round the bucket down to `steps`; a side under `steps` gives a bucket side 0."""
    width, height = size
    resized = size
    if width * height > max_area:
        ratio = width / height
        exact_w = math.sqrt(max_area * ratio)
        w_first = _round_to_steps(exact_w, steps)
        h_first = _round_to_steps(max_area / exact_w, steps)
        h_of_w, w_of_h = _round_to_steps(w_first / ratio, steps), _round_to_steps(h_first * ratio, steps)
        error_w = abs(w_first / h_of_w - ratio) if h_of_w else math.inf
        error_h = abs(w_of_h / h_first - ratio) if h_first else math.inf
        resized = ((w_first, int(w_first / ratio + 0.5)) if error_w < error_h
                   else (int(h_first * ratio + 0.5), h_first))
    return Placement((resized[0] - resized[0] % steps, resized[1] - resized[1] % steps), resized)


def _round_to_steps(x: float, steps: int) -> int:
    rounded = int(x + 0.5)
    return rounded - rounded % steps


def crop_origin(placement: Placement) -> Size:
    """Top-left corner of the centre crop (kohya floors the offset)."""
    (bw, bh), (rw, rh) = placement.bucket, placement.resized
    return (rw - bw) // 2, (rh - bh) // 2


def bucket_table(samples: Counter[Size], ar_errors: list[float]) -> list[str]:
    """kohya's printout: samples per bucket (repeats included), then the mean aspect-ratio error per image."""
    lines = [f"bucket {i}: resolution {size}, count: {samples[size]}" for i, size in enumerate(sorted(samples))]
    mean = sum(ar_errors) / len(ar_errors) if ar_errors else 0.0
    return [*lines, f"mean ar error (without repeats): {mean:.4f}"]


def ar_error(size: Size, bucket: Size) -> float:
    return abs(bucket[0] / bucket[1] - size[0] / size[1])
