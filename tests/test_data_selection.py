"""kohya's choice of samples: regularization balancing and the validation split."""

from library.data.selection import balance_reg_repeats, split_validation


def test_kohya_example_300_class_images_against_25_x_40():
    repeats = balance_reg_repeats([1] * 300, 25 * 40)
    assert repeats == [4] * 100 + [3] * 200
    assert sum(repeats) == 1000


def test_reg_images_are_taken_in_order_until_the_target_and_the_surplus_is_unused():
    assert balance_reg_repeats([1] * 5, 3) == [1, 1, 1, 0, 0]


def test_reg_images_keep_their_own_repeats_in_the_first_round():
    assert balance_reg_repeats([2, 2, 2], 3) == [2, 2, 0]  # may overshoot, as kohya
    assert balance_reg_repeats([2, 1], 7) == [4, 3]


def test_no_training_samples_use_no_reg_images():
    assert balance_reg_repeats([1, 1], 0) == [0, 0]
    assert balance_reg_repeats([], 10) == []


def test_validation_split_is_seeded_and_keeps_the_rounded_up_training_share():
    train, held = split_validation(list(range(10)), 0.25, seed=3)
    assert len(train) == 8 and len(held) == 2  # ceil(10 * 0.75)
    assert sorted(train + held) == list(range(10))
    assert (train, held) == split_validation(list(range(10)), 0.25, seed=3)
    assert split_validation([1, 2], 0.0, seed=3) == ([1, 2], [])
