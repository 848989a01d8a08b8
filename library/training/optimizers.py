"""The optimizer factory: kohya's optimizer_type names, any torch.optim class, or a dotted `package.module.Class`.

Behaviour follows kohya's train_util.get_optimizer (SGDNesterov's default momentum, AdaFactor's relative_step,
the lr ≈ 1 advice for D-Adaptation / Prodigy) but a user's mistake (a missing package, a wrong optimizer_args key)
is a UserError that says what to change, raised before any training step.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config.names import KOHYA_OPTIMIZERS, TORCH_OPTIMIZERS
from ..config.suggest import did_you_mean
from ..errors import UserError

_BNB = "bitsandbytes.optim"
_BNB_HELP = ("bitsandbytes runs only on an NVIDIA GPU (CUDA). On a CUDA machine: pip install bitsandbytes; "
             "otherwise use optimizer_type = \"AdamW\"")


@dataclass(frozen=True)
class _Spec:
    """Where a kohya optimizer name's class lives and what kohya adds to the user's optimizer_args."""

    module: str
    cls: str
    package: str  # pip name, for the install hint
    defaults: dict[str, Any] = field(default_factory=dict)  # used unless optimizer_args sets them
    fixed: dict[str, Any] = field(default_factory=dict)  # always passed; optimizer_args may not set them
    adaptive: bool = False  # learns its own step size: lr is a multiplier, about 1.0


_NESTEROV = {"defaults": {"momentum": 0.9}, "fixed": {"nesterov": True}}
_SPECS: dict[str, _Spec] = {
    "adamw": _Spec("torch.optim", "AdamW", "torch"),
    "adamw8bit": _Spec(_BNB, "AdamW8bit", "bitsandbytes"),
    "pagedadamw": _Spec(_BNB, "PagedAdamW", "bitsandbytes"),
    "pagedadamw8bit": _Spec(_BNB, "PagedAdamW8bit", "bitsandbytes"),
    "pagedadamw32bit": _Spec(_BNB, "PagedAdamW32bit", "bitsandbytes"),
    "lion8bit": _Spec(_BNB, "Lion8bit", "bitsandbytes"),
    "pagedlion8bit": _Spec(_BNB, "PagedLion8bit", "bitsandbytes"),
    "sgdnesterov8bit": _Spec(_BNB, "SGD8bit", "bitsandbytes", **_NESTEROV),
    "lion": _Spec("lion_pytorch", "Lion", "lion-pytorch"),
    "sgdnesterov": _Spec("torch.optim", "SGD", "torch", **_NESTEROV),
    "dadaptation": _Spec("dadaptation.experimental", "DAdaptAdamPreprint", "dadaptation", adaptive=True),
    "dadaptadampreprint": _Spec("dadaptation.experimental", "DAdaptAdamPreprint", "dadaptation", adaptive=True),
    "dadaptadagrad": _Spec("dadaptation", "DAdaptAdaGrad", "dadaptation", adaptive=True),
    "dadaptadam": _Spec("dadaptation", "DAdaptAdam", "dadaptation", adaptive=True),
    "dadaptadan": _Spec("dadaptation", "DAdaptAdan", "dadaptation", adaptive=True),
    "dadaptadanip": _Spec("dadaptation.experimental", "DAdaptAdanIP", "dadaptation", adaptive=True),
    "dadaptlion": _Spec("dadaptation", "DAdaptLion", "dadaptation", adaptive=True),
    "dadaptsgd": _Spec("dadaptation", "DAdaptSGD", "dadaptation", adaptive=True),
    "prodigy": _Spec("prodigyopt", "Prodigy", "prodigyopt", adaptive=True),
    # kohya's AdaFactor is transformers' (relative_step defaults to True), not torch.optim.Adafactor.
    "adafactor": _Spec("transformers.optimization", "Adafactor", "transformers", defaults={"relative_step": True}),
    "radamschedulefree": _Spec("schedulefree", "RAdamScheduleFree", "schedulefree"),
    "adamwschedulefree": _Spec("schedulefree", "AdamWScheduleFree", "schedulefree"),
    "sgdschedulefree": _Spec("schedulefree", "SGDScheduleFree", "schedulefree"),
}


def _load_class(module: str, name: str, package: str, what: str) -> type:
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        help = _BNB_HELP if package == "bitsandbytes" else f"install it with: pip install {package}"
        raise UserError(f"{what} needs the Python package `{package}`, which could not be imported ({error}). "
                        f"{help}") from error
    found = getattr(loaded, name, None)
    if isinstance(found, type):
        return found
    guess = did_you_mean(name, [n for n in dir(loaded) if isinstance(getattr(loaded, n), type)])
    hint = f" Did you mean `{guess}`?" if guess else ""
    raise UserError(f"{what}: `{module}` has no class `{name}`.{hint}")


def import_class(path: str, default_module: str, what: str) -> type:
    """`Name` from `default_module`, or `package.module.Name`; a missing package or name is a UserError."""
    module, _, name = path.rpartition(".")
    module = module or default_module
    return _load_class(module, name, module.partition(".")[0], what)


def call_with_options(cls: type, first: Any, options: dict[str, Any], *, option: str,
                      fixed: dict[str, Any]) -> Any:
    """`cls(first, **fixed, **options)`; an unknown, reserved or rejected key of the user's `options` (read from the
    config key `option`) is a UserError listing the parameters `cls` accepts."""
    label = f"{cls.__module__}.{cls.__qualname__}"
    params = inspect.signature(cls).parameters
    accepted = [n for i, (n, p) in enumerate(params.items())
                if i > 0 and n not in fixed and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key in options:
        if key in fixed:
            raise UserError(f"{option}: `{key}` of {label} is set for you (a learning rate comes from "
                            f"learning_rate); remove it from {option}")
        if key not in accepted and not takes_any:
            guess = did_you_mean(key, accepted)
            hint = f" Did you mean `{guess}`?" if guess else ""
            raise UserError(f"{option}: {label} has no parameter `{key}`.{hint} It accepts: {', '.join(accepted)}")
    try:
        return cls(first, **fixed, **options)
    except (TypeError, ValueError) as error:
        raise UserError(f"{option} {options} rejected by {label}: {error}. "
                        f"It accepts: {', '.join(accepted)}") from error


def _group_lrs(param_groups: list[dict], lr: float) -> set[float]:
    return {float(group.get("lr", lr)) for group in param_groups}


def _adaptive_notes(name: str, param_groups: list[dict], lr: float) -> list[str]:
    lrs = _group_lrs(param_groups, lr) - {0.0}
    if len(lrs) > 1:
        raise UserError(f"{name} adapts one step size for all parameters, so every parameter group needs the same "
                        f"learning rate (or 0 to freeze it); got {sorted(lrs)}: make learning_rate_te equal to "
                        "learning_rate, or leave it unset")
    if max(lrs, default=lr) <= 0.1:
        return [f"{name} learns its own step size and learning_rate is a multiplier of it: about 1.0 is usual, "
                f"{max(lrs, default=lr)} will train very slowly"]
    return []


def _adafactor_options(options: dict[str, Any], param_groups: list[dict], lr: float
                       ) -> tuple[dict[str, Any], float | None, list[str]]:
    """kohya's AdaFactor rules: warmup_init needs relative_step; relative_step (kohya's and transformers' default,
    with scale_parameter=True, warmup_init=False) computes its own step size, so no lr is passed and the lr
    schedule becomes `adafactor`. Returns (options, lr to pass, notes)."""
    notes: list[str] = []
    if options.get("warmup_init") and not options["relative_step"]:
        options = {**options, "relative_step": True}
        notes.append("AdaFactor: warmup_init=True needs relative_step=True, so relative_step is on")
    if not options["relative_step"]:
        return options, lr, notes
    if len(_group_lrs(param_groups, lr)) > 1:
        notes.append("AdaFactor with relative_step=True ignores per-group learning rates (learning_rate_te)")
    notes.append(f"AdaFactor with relative_step=True computes its own learning rate: lr_scheduler is replaced by "
                 f"`adafactor` and learning_rate {lr} only shows as the lr before the first step. For a fixed lr "
                 'use optimizer_args ["relative_step=False", "scale_parameter=False", "warmup_init=False"]')
    return options, None, notes


def _spec_for(name: str) -> _Spec:
    """kohya's table (any case), else torch.optim.<Name>, else a dotted package.module.Class."""
    if name.lower() in _SPECS:
        return _SPECS[name.lower()]
    if "." in name:
        module, _, cls = name.rpartition(".")
        return _Spec(module, cls, module.partition(".")[0])
    if isinstance(getattr(torch.optim, name, None), type):
        return _Spec("torch.optim", name, "torch")
    guess = did_you_mean(name, KOHYA_OPTIMIZERS + TORCH_OPTIMIZERS)
    raise UserError(f"unknown optimizer_type `{name}`" + (f"; did you mean `{guess}`?" if guess else ""))


def make_optimizer(name: str, param_groups: list[dict], lr: float, args: dict[str, Any]
                   ) -> tuple[torch.optim.Optimizer, list[str]]:
    """Build the optimizer `name` (kohya's optimizer_type) over `param_groups` ({"params": [...], "lr"?: float}).

    `args` are the parsed optimizer_args. Returns the optimizer and notes to show the user once. torch AdamW is
    fused when every parameter is on CUDA, else foreach (one multi-tensor update, not a Python loop over the
    parameters: faster steps of the tiny model on 2 CPU cores, bench/RESULTS.md; its temporaries hold about one
    more copy of the parameters at the peak), unless optimizer_args sets fused or foreach. Schedule-free optimizers
    come back in train mode: the loop calls `.eval()` before sampling or saving and `.train()` after."""
    spec = _spec_for(name)
    cls = _load_class(spec.module, spec.cls, spec.package, f"optimizer_type {name}")
    groups = [{**group, "params": list(group["params"])} for group in param_groups]
    options, lr_arg, notes = {**spec.defaults, **args}, lr, []
    if spec.adaptive:
        notes += _adaptive_notes(name, groups, lr)
    if spec is _SPECS["adafactor"]:
        options, lr_arg, adafactor_notes = _adafactor_options(options, groups, lr)
        notes += adafactor_notes
    if lr_arg is None:
        groups = [{k: v for k, v in group.items() if k != "lr"} for group in groups]
    if cls is torch.optim.AdamW and not {"fused", "foreach"} & options.keys():
        cuda = all(p.is_cuda for group in groups for p in group["params"])
        options["fused" if cuda else "foreach"] = True
    optimizer = call_with_options(cls, groups, options, option="optimizer_args", fixed={"lr": lr_arg, **spec.fixed})
    if lr_arg is None:  # relative-step AdaFactor never reads group["lr"]: it is what the lr log shows before step 1
        for group in optimizer.param_groups:
            group["lr"] = lr
    if is_schedule_free(optimizer):
        optimizer.train()
        notes.append(f"{name} is schedule-free: it needs no lr schedule, so lr_scheduler and lr_warmup_steps are "
                     "not used (warm up with optimizer_args warmup_steps=N)")
    return optimizer, notes


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """Schedule-free optimizers (Defazio et al. 2024) keep separate weights for evaluation, switched by .eval()/.train()."""
    return type(_unwrapped(optimizer)).__name__.endswith("ScheduleFree")


def _unwrapped(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer inside accelerate's AcceleratedOptimizer (or the optimizer itself)."""
    return getattr(optimizer, "optimizer", optimizer)


UPDATE_IMPLEMENTATION = ("fused", "foreach", "capturable")  # how the update runs: the same math either way


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved state but keep this run's update implementation (fused on CUDA, foreach on the CPU, or the
    user's optimizer_args), not the saving run's: a CPU state resumed on a GPU runs fused."""
    how = [{k: g[k] for k in UPDATE_IMPLEMENTATION if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, keys in zip(optimizer.param_groups, how):
        group.update(keys)


def describe_optimizer(optimizer: torch.optim.Optimizer) -> str:
    """kohya's ss_optimizer: `module.Class(key=value,...)` with the settings that differ from the class defaults."""
    optimizer = _unwrapped(optimizer)
    cls = type(optimizer)
    params = inspect.signature(cls).parameters
    changed = [f"{key}={value}" for key, value in optimizer.defaults.items()
               if key in params and key != "lr" and key not in UPDATE_IMPLEMENTATION
               and params[key].default is not inspect.Parameter.empty
               and value != params[key].default]
    name = f"{cls.__module__}.{cls.__name__}"
    return f"{name}({','.join(changed)})" if changed else name
