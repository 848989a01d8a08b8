"""LR schedules: multipliers against diffusers / transformers (the functions kohya calls), kohya's errors, resume."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.optimization import get_scheduler as diffusers_scheduler
from transformers import optimization as tf

from library.config.train_config import TrainConfig
from library.errors import UserError
from library.training.lr_schedules import (
    lr_multiplier, lr_scheduler_from_config, make_lr_scheduler, parse_step_rules, resolve_warmup,
)
from library.training.optimizers import make_optimizer

LR, TOTAL = 1e-3, 40


def sgd(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def trace(scheduler, steps: int = TOTAL + 3) -> list[float]:
    """The lr factor at steps 0..steps-1 (stepping past the end too)."""
    values = []
    for _ in range(steps):
        values.append(scheduler.get_last_lr()[0] / LR)
        scheduler.optimizer.step()
        scheduler.step()
    return values


DIFFUSERS_CASES = [
    ("constant_with_warmup", {}),
    ("linear", {}),
    ("cosine", {}),
    ("cosine_with_restarts", {"num_cycles": 3}),
    ("polynomial", {"power": 2.0}),
]


@pytest.mark.parametrize("name,extra", DIFFUSERS_CASES, ids=[c[0] for c in DIFFUSERS_CASES])
@pytest.mark.parametrize("warmup", [0, 7])
def test_multipliers_match_diffusers(name, extra, warmup):
    reference = trace(diffusers_scheduler(name, sgd(), num_warmup_steps=warmup, num_training_steps=TOTAL, **extra))
    ours = trace(make_lr_scheduler(sgd(), name, total_steps=TOTAL, warmup=warmup, **extra))
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-12)
    pure = dict(power=extra.get("power", 1.0), num_cycles=extra.get("num_cycles", 1), end_ratio=1e-7 / LR)
    assert [lr_multiplier(name, s, TOTAL, warmup, **pure) for s in range(TOTAL + 3)] == pytest.approx(reference)


def test_piecewise_constant_matches_diffusers():
    rules = "1:10,0.1:20,0.01"
    reference = trace(diffusers_scheduler("piecewise_constant", sgd(), step_rules=rules))
    ours = trace(make_lr_scheduler(sgd(), "piecewise_constant", total_steps=TOTAL,
                                   scheduler_args={"step_rules": rules}))
    assert ours == reference
    assert parse_step_rules(rules) == (((10, 1.0), (20, 0.1)), 0.01)


TRANSFORMERS_CASES = [  # kohya's calls: num_cycles / 2 and min_lr_ratio for the min-lr cosines
    ("inverse_sqrt", dict(timescale=None), lambda o: tf.get_inverse_sqrt_schedule(o, 7)),
    ("inverse_sqrt", dict(timescale=20), lambda o: tf.get_inverse_sqrt_schedule(o, 7, timescale=20)),
    ("cosine_with_min_lr", dict(min_lr_ratio=0.1, num_cycles=1),
     lambda o: tf.get_cosine_with_min_lr_schedule_with_warmup(o, 7, TOTAL, num_cycles=0.5, min_lr_rate=0.1)),
    ("cosine_warmup_with_min_lr", dict(min_lr_ratio=0.2, num_cycles=1),
     lambda o: tf.get_cosine_with_min_lr_schedule_with_warmup_lr_rate(o, 7, TOTAL, num_cycles=0.5, min_lr_rate=0.2)),
    ("warmup_stable_decay", dict(decay_steps=10, min_lr_ratio=0.05, num_cycles=1),
     lambda o: tf.get_wsd_schedule(o, 7, 10, num_stable_steps=TOTAL - 17, min_lr_ratio=0.05, num_cycles=0.5)),
    ("warmup_stable_decay", dict(decay_steps=0.25, scheduler_args={"warmup_type": "1-sqrt", "decay_type": "linear"}),
     lambda o: tf.get_wsd_schedule(o, 7, 10, num_stable_steps=TOTAL - 17, warmup_type="1-sqrt", decay_type="linear")),
]


@pytest.mark.parametrize("name,options,reference", TRANSFORMERS_CASES, ids=[f"{c[0]}{i}" for i, c in
                                                                         enumerate(TRANSFORMERS_CASES)])
def test_multipliers_match_transformers(name, options, reference):
    ours = trace(make_lr_scheduler(sgd(), name, total_steps=TOTAL, warmup=7, **options))
    assert ours == pytest.approx(trace(reference(sgd())), rel=1e-9, abs=1e-12)


def test_key_values_by_hand():
    assert lr_multiplier("linear", 5, 100, 10) == 0.5  # warmup halfway
    assert lr_multiplier("linear", 10, 100, 10) == 1.0 and lr_multiplier("linear", 100, 100, 10) == 0.0
    assert lr_multiplier("cosine", 55, 100, 10) == pytest.approx(0.5)
    assert lr_multiplier("cosine_with_restarts", 40, 100, 10, num_cycles=3) == pytest.approx(1.0)  # a restart
    assert lr_multiplier("polynomial", 55, 100, 10, power=2.0) == pytest.approx(0.25)
    assert lr_multiplier("inverse_sqrt", 40, 100, 10) == pytest.approx(1 / math.sqrt(4))
    assert lr_multiplier("constant", 0, 100) == 1.0


def test_resolve_warmup():
    assert resolve_warmup(0.1, 1000) == 100 and resolve_warmup(0.0999, 1000) == 99 and resolve_warmup(25, 1000) == 25
    scheduler = make_lr_scheduler(sgd(), "constant_with_warmup", total_steps=100, warmup=0.1)
    assert trace(scheduler, 11)[5] == pytest.approx(0.5)


def test_constant_with_warmup_is_an_error_like_kohya():
    with pytest.raises(UserError, match="constant does not use lr_warmup_steps.*constant_with_warmup"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, warmup=10)
    with pytest.raises(UserError, match="lr_warmup_steps"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, warmup=0.05)
    assert trace(make_lr_scheduler(sgd(), "constant", total_steps=100), 3) == [1.0] * 3


def test_schedule_argument_errors():
    with pytest.raises(UserError, match="`gamma` is not used by lr_scheduler cosine"):
        make_lr_scheduler(sgd(), "cosine", total_steps=100, scheduler_args={"gamma": 0.5})
    with pytest.raises(UserError, match="lr_end"):
        make_lr_scheduler(sgd(1e-8), "polynomial", total_steps=100)
    with pytest.raises(UserError, match="lr_scheduler_min_lr_ratio"):
        make_lr_scheduler(sgd(), "cosine_with_min_lr", total_steps=100)
    with pytest.raises(UserError, match="step_rules"):
        make_lr_scheduler(sgd(), "piecewise_constant", total_steps=100)
    with pytest.raises(UserError, match="multiplier:until_step"):
        make_lr_scheduler(sgd(), "piecewise_constant", total_steps=100, scheduler_args={"step_rules": "1;10,0.1"})
    with pytest.raises(UserError, match="warmup_type"):
        make_lr_scheduler(sgd(), "warmup_stable_decay", total_steps=100, scheduler_args={"warmup_type": "exp"})
    with pytest.raises(UserError, match="validation metric"):
        make_lr_scheduler(sgd(), "reduce_lr_on_plateau", total_steps=100)


def test_polynomial_lr_end_from_scheduler_args():
    scheduler = make_lr_scheduler(sgd(), "polynomial", total_steps=TOTAL, scheduler_args={"lr_end": 1e-4})
    assert trace(scheduler)[TOTAL] == pytest.approx(0.1)


def test_scheduler_type_builds_any_torch_class():
    scheduler = make_lr_scheduler(sgd(), "cosine", total_steps=100, scheduler_type="StepLR",
                                  scheduler_args={"step_size": 2, "gamma": 0.5})
    assert trace(scheduler, 5) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])
    dotted = "torch.optim.lr_scheduler.ExponentialLR"
    scheduler = make_lr_scheduler(sgd(), "constant", total_steps=100, scheduler_type=dotted,
                                  scheduler_args={"gamma": 0.9})
    assert isinstance(scheduler, torch.optim.lr_scheduler.ExponentialLR)
    with pytest.raises(UserError, match="has no parameter `stepsize`.*Did you mean `step_size`"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, scheduler_type="StepLR", scheduler_args={"stepsize": 2})
    with pytest.raises(UserError, match="does not use lr_warmup_steps"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, warmup=5, scheduler_type="StepLR",
                          scheduler_args={"step_size": 2})
    with pytest.raises(UserError, match="validation metric"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, scheduler_type="ReduceLROnPlateau")
    with pytest.raises(UserError, match="no class `CosineLR`"):
        make_lr_scheduler(sgd(), "constant", total_steps=100, scheduler_type="CosineLR")


def test_adafactor_schedule():
    optimizer, _ = make_optimizer("AdaFactor", [{"params": [torch.nn.Parameter(torch.ones(2))]}], 1e-3, {})
    scheduler = make_lr_scheduler(optimizer, "cosine", total_steps=100)  # forced, as kohya
    assert isinstance(scheduler, tf.AdafactorSchedule) and scheduler.get_last_lr() == [1e-3]
    with pytest.raises(UserError, match="relative_step=True does not use lr_warmup_steps"):
        make_lr_scheduler(optimizer, "adafactor", total_steps=100, warmup=10)
    with pytest.raises(UserError, match="only with optimizer_type AdaFactor"):
        make_lr_scheduler(sgd(), "adafactor", total_steps=100)


def test_schedule_free_gets_a_constant_schedule():
    pytest.importorskip("schedulefree")
    optimizer, _ = make_optimizer("AdamWScheduleFree", [{"params": [torch.nn.Parameter(torch.ones(2))]}], LR, {})
    assert trace(make_lr_scheduler(optimizer, "cosine", total_steps=10, warmup=3), 10) == [1.0] * 10


@pytest.mark.parametrize("name", ["cosine_with_restarts", "warmup_stable_decay", "piecewise_constant"])
def test_state_dict_round_trip_resumes_the_same_lr(name):
    def build():
        param = torch.nn.Parameter(torch.ones(2))
        optimizer = torch.optim.AdamW([{"params": [param]}, {"params": [torch.nn.Parameter(torch.ones(1))],
                                                             "lr": LR / 2}], lr=LR)
        extra = {"scheduler_args": {"step_rules": "1:5,0.5:12,0.1"}} if name == "piecewise_constant" else {
            "warmup": 4, "decay_steps": 0.3, "num_cycles": 2}
        return optimizer, make_lr_scheduler(optimizer, name, total_steps=30, **extra)

    optimizer, scheduler = build()
    trace(scheduler, 13)
    saved = (optimizer.state_dict(), scheduler.state_dict())
    expected = trace(scheduler, 10)
    optimizer, resumed = build()
    optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert trace(resumed, 10) == expected
    assert resumed.get_last_lr()[1] == pytest.approx(scheduler.get_last_lr()[1])


def test_from_config():
    config = TrainConfig.from_flat({"lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 0.1,
                                    "lr_scheduler_num_cycles": 2})
    scheduler = lr_scheduler_from_config(sgd(), config.optimizer, total_steps=TOTAL)
    assert trace(scheduler) == pytest.approx(
        [lr_multiplier("cosine_with_restarts", s, TOTAL, 4, num_cycles=2) for s in range(TOTAL + 3)])
