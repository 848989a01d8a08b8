"""Which images an epoch uses: kohya's validation split and its regularization balancing.

Both choices are made once at build time, so every epoch trains on the same samples.
"""

from __future__ import annotations

import math
import random
from typing import TypeVar

T = TypeVar("T")


def split_validation(entries: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(training, held out): a seeded shuffle, training keeps the first ceil(n * (1 - fraction)), as kohya."""
    if fraction <= 0:
        return list(entries), []
    shuffled = list(entries)
    random.Random(seed).shuffle(shuffled)
    keep = math.ceil(len(shuffled) * (1 - fraction))
    return shuffled[:keep], shuffled[keep:]


def balance_reg_repeats(repeats: list[int], target: int) -> list[int]:
    """New repeats of each regularization image (0: unused), in subset and file order.

    kohya: images are taken with their own repeats until the count reaches `target` (the dataset's training
    samples); if all are taken and it is still short, one more repeat is added image by image, cyclically,
    until it equals `target`. So 300 class images x1 against 25 x 40 = 1000 give 200 x3 and 100 x4, and
    surplus images never train.
    """
    balanced = [0] * len(repeats)
    count = 0
    for index, own in enumerate(repeats):
        if count >= target:
            return balanced
        balanced[index] = own
        count += own
    while repeats and count < target:
        for index in range(len(repeats)):
            if count >= target:
                break
            balanced[index] += 1
            count += 1
    return balanced
