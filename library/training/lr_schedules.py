"""Learning-rate schedules: kohya's lr_scheduler names as pure multiplier functions, wrapped in LambdaLR.

The multipliers are those of the transformers functions kohya's get_scheduler_fix calls (diffusers' agree for the
names both have), with kohya's arguments (num_cycles/2 for the min-lr cosines). LambdaLR over a
`functools.partial` keeps `state_dict()` / `load_state_dict()` resume working. Steps count `scheduler.step()`
calls: kohya schedules over max_train_steps × num_processes.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from ..errors import UserError
from .optimizers import call_with_options, import_class, is_schedule_free

if TYPE_CHECKING:
    from ..config.train_config import OptimizerArgs

SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
             "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay",
             "piecewise_constant")
# lr_scheduler_args each named schedule reads (kohya passes them on to the transformers / diffusers function).
_SCHEDULE_ARGS = {"polynomial": ("lr_end",), "piecewise_constant": ("step_rules",),
                  "warmup_stable_decay": ("warmup_type", "decay_type"),
                  "cosine_warmup_with_min_lr": ("warmup_lr_rate",)}
_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


def resolve_warmup(warmup: int | float, total: int) -> int:
    """kohya's steps-or-fraction: an int is a step count, a float that fraction of `total` (truncated)."""
    return int(warmup * total) if isinstance(warmup, float) else int(warmup)


@functools.lru_cache(maxsize=8)
def parse_step_rules(text: str) -> tuple[tuple[tuple[int, float], ...], float]:
    """diffusers' piecewise_constant rules: "1:10,0.1:20,0.01" = ×1 before step 10, ×0.1 before 20, then ×0.01.
    Returns ((until_step, multiplier), ...) sorted by step, and the last multiplier."""
    *rules, last = text.split(",")
    try:
        pairs = [rule.split(":") for rule in rules]
        return tuple(sorted((int(until), float(value)) for value, until in pairs)), float(last)
    except ValueError:
        raise UserError(f'lr_scheduler_args step_rules {text!r} is not "multiplier:until_step,...,last_multiplier", '
                        'e.g. "1:100,0.1:200,0.01"') from None


def _cosine(progress: float, cycles: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress))


def _decay_shape(kind: str, progress: float, cycles: float) -> float:
    """warmup_stable_decay's curves, 1 → 0 as progress goes 0 → 1; its warmup is the same curve run backwards."""
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return _cosine(progress, cycles)
    return 1.0 - math.sqrt(progress)


def _warmup_stable_decay(step: int, warmup: int, stable: int, decay: int, warmup_type: str, decay_type: str,
                         min_lr_ratio: float, cycles: float) -> float:
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM), as transformers' get_wsd_schedule: min_lr_ratio → 1 → floor."""
    if step < warmup:
        factor = _decay_shape(warmup_type, 1.0 - step / max(1, warmup), 0.5)
    elif step < warmup + stable:
        return 1.0
    elif step < warmup + stable + decay:
        factor = _decay_shape(decay_type, (step - warmup - stable) / max(1, decay), cycles)
    else:
        return min_lr_ratio
    return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)


def lr_multiplier(name: str, step: int, total: int, warmup: int = 0, *, decay: int = 0, num_cycles: int = 1,
                  power: float = 1.0, end_ratio: float = 0.0, min_lr_ratio: float = 0.0, timescale: int | None = None,
                  warmup_type: str = "linear", decay_type: str = "cosine", warmup_lr_rate: float | None = None,
                  step_rules: str = "1") -> float:
    """The factor on the base lr after `step` scheduler steps. `end_ratio` is polynomial's lr_end / lr; `decay` is
    warmup_stable_decay's decay steps; `step_rules` is piecewise_constant's rules (parse_step_rules)."""
    if name == "constant":
        return 1.0
    if name == "piecewise_constant":
        rules, last = parse_step_rules(step_rules)
        return next((value for until, value in rules if step < until), last)
    if name == "warmup_stable_decay":
        return _warmup_stable_decay(step, warmup, total - warmup - decay, decay, warmup_type, decay_type,
                                    min_lr_ratio, num_cycles / 2)
    if name == "cosine_warmup_with_min_lr":  # transformers' lr_rate variant: warmup and progress shifted by one step
        if step < warmup:
            if warmup_lr_rate is None:
                return (step + 1.0) / max(1.0, warmup)
            return warmup_lr_rate + (1.0 - warmup_lr_rate) * step / max(1, warmup - 1)
        progress = (step - warmup + 1.0) / max(1.0, total - warmup)
        return max(0.0, _cosine(progress, num_cycles / 2) * (1.0 - min_lr_ratio) + min_lr_ratio)
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if name == "constant_with_warmup":
        return 1.0
    if name == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if name == "cosine":  # a half cosine to 0: kohya does not pass num_cycles here
        return max(0.0, _cosine(progress, 0.5))
    if name == "cosine_with_restarts":  # SGDR (Loshchilov & Hutter 2017), hard restarts, num_cycles of them
        return 0.0 if progress >= 1.0 else max(0.0, _cosine((num_cycles * progress) % 1.0, 0.5))
    if name == "polynomial":
        if step > total:
            return end_ratio
        return (1.0 - end_ratio) * (1.0 - progress) ** power + end_ratio
    if name == "inverse_sqrt":
        scale = timescale or warmup or 10_000
        return 1.0 / math.sqrt((step + scale - warmup) / scale)
    if name == "cosine_with_min_lr":
        return max(0.0, _cosine(progress, num_cycles / 2) * (1.0 - min_lr_ratio) + min_lr_ratio)
    raise ValueError(f"unknown lr schedule {name!r}")


def _forbid_warmup(warmup: int, what: str, instead: str) -> None:
    """kohya's "does not require num_warmup_steps" ValueError, as advice."""
    if warmup:
        raise UserError(f"{what} does not use lr_warmup_steps ({warmup} steps set): {instead}")


def _relative_step_adafactor(optimizer: torch.optim.Optimizer) -> bool:
    if not optimizer.defaults.get("relative_step"):
        return False
    from transformers.optimization import Adafactor
    return isinstance(optimizer, Adafactor)


def _schedule_options(optimizer: torch.optim.Optimizer, name: str, args: dict[str, Any], warmup: int,
                      min_lr_ratio: float | None) -> dict[str, Any]:
    """lr_multiplier's extra keywords from lr_scheduler_args, checked."""
    accepted = _SCHEDULE_ARGS.get(name, ())
    for key in args:
        if key not in accepted:
            uses = f"only {', '.join(accepted)}" if accepted else "none"
            raise UserError(f"lr_scheduler_args: `{key}` is not used by lr_scheduler {name} (it reads {uses}); for "
                            "another scheduler class set lr_scheduler_type")
    options = {k: args[k] for k in ("warmup_type", "decay_type", "warmup_lr_rate") if k in args}
    for key in ("warmup_type", "decay_type"):
        if options.get(key, "linear") not in _WSD_SHAPES:
            raise UserError(f"lr_scheduler_args {key} must be one of {', '.join(_WSD_SHAPES)}, not {options[key]!r}")
    if name in ("constant", "piecewise_constant"):
        _forbid_warmup(warmup, f"lr_scheduler {name}",
                       "use constant_with_warmup" if name == "constant" else "put the warmup into step_rules")
    if name == "piecewise_constant":
        if "step_rules" not in args:
            raise UserError('lr_scheduler piecewise_constant needs lr_scheduler_args ["step_rules=\'1:100,0.1\'"]')
        parse_step_rules(str(args["step_rules"]))
        options["step_rules"] = str(args["step_rules"])
    if name == "polynomial":
        lr, lr_end = optimizer.defaults["lr"], float(args.get("lr_end", 1e-7))
        if not lr > lr_end:
            raise UserError(f"lr_scheduler polynomial decays to lr_end {lr_end}, which must be below the "
                            f"learning rate {lr}; set lr_scheduler_args [\"lr_end=...\"]")
        options["end_ratio"] = lr_end / lr
    if name in ("cosine_with_min_lr", "cosine_warmup_with_min_lr") and min_lr_ratio is None:
        raise UserError(f"lr_scheduler {name} needs lr_scheduler_min_lr_ratio (the floor as a fraction of the lr)")
    return options


def make_lr_scheduler(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, warmup: int | float = 0,
                      decay_steps: int | float = 0, num_cycles: int = 1, power: float = 1.0,
                      min_lr_ratio: float | None = None, timescale: int | None = None, scheduler_type: str = "",
                      scheduler_args: dict[str, Any] | None = None) -> LRScheduler:
    """The scheduler kohya's options describe. `warmup` / `decay_steps`: steps (int) or fraction of total (float).

    Relative-step AdaFactor gets transformers' AdafactorSchedule whatever `name` (as kohya); schedule-free
    optimizers a constant one; `scheduler_type` (a torch.optim.lr_scheduler class or package.module.Class) is built
    with `scheduler_args` and replaces `name`."""
    args = dict(scheduler_args or {})
    warmup_steps = resolve_warmup(warmup, total_steps)
    if _relative_step_adafactor(optimizer):
        from transformers.optimization import AdafactorSchedule
        _forbid_warmup(warmup_steps, "AdaFactor with relative_step=True",
                       "remove it, or use optimizer_args warmup_init=True")
        return AdafactorSchedule(optimizer, optimizer.param_groups[0]["lr"])
    if is_schedule_free(optimizer):
        return LambdaLR(optimizer, functools.partial(lr_multiplier, "constant", total=total_steps))
    if scheduler_type:
        _forbid_warmup(warmup_steps, f"lr_scheduler_type {scheduler_type}", "remove it")
        cls = import_class(scheduler_type, "torch.optim.lr_scheduler", f"lr_scheduler_type {scheduler_type}")
        scheduler = call_with_options(cls, optimizer, args, option="lr_scheduler_args", fixed={})
        if isinstance(scheduler, ReduceLROnPlateau):
            raise UserError("ReduceLROnPlateau needs a validation metric at every step, which training does not "
                            "give it; choose another lr_scheduler_type")
        return scheduler
    if name == "adafactor":
        raise UserError('lr_scheduler "adafactor" works only with optimizer_type AdaFactor and relative_step=True '
                        "(its default); choose another lr_scheduler")
    if name not in SCHEDULES:
        raise UserError(f"lr_scheduler {name!r} is not supported here (reduce_lr_on_plateau needs a validation "
                        f"metric, which training does not have); choose one of {', '.join(SCHEDULES)}")
    options = _schedule_options(optimizer, name, args, warmup_steps, min_lr_ratio)
    multiplier = functools.partial(
        lr_multiplier, name, total=total_steps, warmup=warmup_steps, decay=resolve_warmup(decay_steps, total_steps),
        num_cycles=num_cycles, power=power, min_lr_ratio=min_lr_ratio or 0.0, timescale=timescale, **options)
    return LambdaLR(optimizer, multiplier)


def lr_scheduler_from_config(optimizer: torch.optim.Optimizer, options: OptimizerArgs,
                             total_steps: int) -> LRScheduler:
    """make_lr_scheduler with the run's lr_* options (`TrainConfig.optimizer`)."""
    return make_lr_scheduler(
        optimizer, options.lr_scheduler, total_steps=total_steps, warmup=options.lr_warmup_steps,
        decay_steps=options.lr_decay_steps, num_cycles=options.lr_scheduler_num_cycles,
        power=options.lr_scheduler_power, min_lr_ratio=options.lr_scheduler_min_lr_ratio,
        timescale=options.lr_scheduler_timescale, scheduler_type=options.lr_scheduler_type,
        scheduler_args=options.lr_scheduler_args)
