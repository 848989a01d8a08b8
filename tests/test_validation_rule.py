"""The overfit rule and the checkpoint pick, on hand-made series (pure functions, no model)."""

from __future__ import annotations

from library.validation.overfit import Evaluation, OverfitRule, choose_checkpoint


def series(*losses: float, every: int = 10) -> list[Evaluation]:
    return [Evaluation((i + 1) * every, loss) for i, loss in enumerate(losses)]


def test_a_falling_loss_is_not_overfitting():
    assert OverfitRule(0.02, 2).onset(series(1.0, 0.9, 0.8, 0.7)) is None


def test_a_rise_within_the_tolerance_is_not_overfitting():
    assert OverfitRule(0.05, 2).onset(series(1.0, 0.8, 0.83, 0.84, 0.82)) is None


def test_a_rise_held_for_patience_evaluations_is_overfitting_from_its_first():
    onset = OverfitRule(0.02, 3).onset(series(1.0, 0.8, 0.9, 0.95, 1.0, 1.1))
    assert (onset.began_step, onset.detected_step) == (30, 50)
    assert "step 20" in onset.reason and "0.80000" in onset.reason


def test_a_streak_broken_by_a_new_low_starts_again():
    rule = OverfitRule(0.02, 2)
    assert rule.onset(series(1.0, 0.8, 0.9, 0.7, 0.75)) is None  # 0.9 alone, then a new minimum
    assert rule.onset(series(1.0, 0.8, 0.9, 0.7, 0.75, 0.8)).began_step == 50


def test_a_drift_threshold_counts_when_set():
    evaluations = [Evaluation(10, 1.0, 0.1), Evaluation(20, 0.9, 0.2), Evaluation(30, 0.8, 0.5)]
    assert OverfitRule(0.02, 2).onset(evaluations) is None
    onset = OverfitRule(0.02, 2, max_drift=0.3).onset(evaluations)
    assert (onset.began_step, onset.detected_step) == (30, 30) and "drift" in onset.reason


def test_the_chosen_checkpoint_is_the_last_saved_before_the_onset():
    onset = OverfitRule(0.02, 2).onset(series(1.0, 0.8, 0.9, 0.95))  # began at step 30
    assert choose_checkpoint([10, 20, 30, 40], onset)[0] == 1
    assert choose_checkpoint([5, 25, 35], onset)[0] == 1
    index, reason = choose_checkpoint([35, 40], onset)
    assert index is None and "before the first checkpoint" in reason


def test_without_overfitting_the_last_checkpoint_is_chosen():
    assert choose_checkpoint([10, 20, 30], None) == (2, "no overfitting detected: the last checkpoint")
    assert choose_checkpoint([], None)[0] is None
