"""The optimizer factory: every kohya name, torch.optim and dotted classes, and the user-facing error messages."""

from __future__ import annotations

import sys

import pytest
import torch

from library.errors import UserError
from library.training.optimizers import describe_optimizer, make_optimizer


def groups(lr_te: float | None = None) -> list[dict]:
    torch.manual_seed(0)
    unet, te = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    second = {"params": te.parameters()} | ({"lr": lr_te} if lr_te is not None else {})
    return [{"params": unet.parameters()}, second]


def step(optimizer: torch.optim.Optimizer) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]
    for _ in range(6):  # RAdam-style rectification makes no move in the first steps
        optimizer.zero_grad()
        sum((p ** 2).sum() for p in params).backward()
        optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))


# (optimizer_type, package that must import, class it builds, learning rate)
NAMES = [
    ("AdamW", "torch", "torch.optim.adamw.AdamW", 1e-3),
    ("SGDNesterov", "torch", "torch.optim.sgd.SGD", 1e-3),
    ("RAdam", "torch", "torch.optim.radam.RAdam", 1e-3),
    ("torch.optim.RMSprop", "torch", "torch.optim.rmsprop.RMSprop", 1e-3),
    ("Adafactor", "transformers", "transformers.optimization.Adafactor", 1e-3),
    ("Lion", "lion_pytorch", "lion_pytorch.lion_pytorch.Lion", 1e-4),
    ("Prodigy", "prodigyopt", "prodigyopt.prodigy.Prodigy", 1.0),
    ("DAdaptation", "dadaptation", "dadaptation.experimental.dadapt_adam_preprint.DAdaptAdamPreprint", 1.0),
    ("DAdaptAdam", "dadaptation", "dadaptation.dadapt_adam.DAdaptAdam", 1.0),
    ("DAdaptAdaGrad", "dadaptation", "dadaptation.dadapt_adagrad.DAdaptAdaGrad", 1.0),
    ("DAdaptAdan", "dadaptation", "dadaptation.dadapt_adan.DAdaptAdan", 1.0),
    ("DAdaptAdanIP", "dadaptation", "dadaptation.experimental.dadapt_adan_ip.DAdaptAdanIP", 1.0),
    ("DAdaptLion", "dadaptation", "dadaptation.dadapt_lion.DAdaptLion", 1.0),
    ("DAdaptSGD", "dadaptation", "dadaptation.dadapt_sgd.DAdaptSGD", 1.0),
    ("AdamWScheduleFree", "schedulefree", "schedulefree.adamw_schedulefree.AdamWScheduleFree", 1e-3),
    ("RAdamScheduleFree", "schedulefree", "schedulefree.radam_schedulefree.RAdamScheduleFree", 1e-3),
    ("SGDScheduleFree", "schedulefree", "schedulefree.sgd_schedulefree.SGDScheduleFree", 1e-3),
    ("AdamW8bit", "bitsandbytes", "bitsandbytes.optim.adamw.AdamW8bit", 1e-3),
]


@pytest.mark.parametrize("name,package,cls,lr", NAMES, ids=[n[0] for n in NAMES])
def test_each_supported_name_builds_and_steps(name, package, cls, lr):
    pytest.importorskip(package)
    if package == "bitsandbytes" and not torch.cuda.is_available():
        pytest.skip("bitsandbytes optimizers need CUDA")
    optimizer, _ = make_optimizer(name, groups(), lr, {})
    assert f"{type(optimizer).__module__}.{type(optimizer).__name__}" == cls
    step(optimizer)


def test_adamw_keeps_group_lrs_and_args():
    optimizer, notes = make_optimizer("AdamW", groups(lr_te=5e-5), 1e-4, {"weight_decay": 0.05, "betas": (0.9, 0.99)})
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 5e-5]
    assert optimizer.defaults["weight_decay"] == 0.05 and optimizer.defaults["fused"] is None  # CPU: not fused,
    assert optimizer.defaults["foreach"] is True  # but one multi-tensor update, not a loop over the parameters
    assert make_optimizer("AdamW", groups(), 1e-4, {"foreach": False})[0].defaults["foreach"] is False
    assert notes == []
    assert describe_optimizer(optimizer) == "torch.optim.adamw.AdamW(betas=(0.9, 0.99),weight_decay=0.05)"
    assert describe_optimizer(make_optimizer("AdamW", groups(), 1e-4, {})[0]) == "torch.optim.adamw.AdamW"


def test_sgd_nesterov_adds_momentum_and_nesterov():
    optimizer, _ = make_optimizer("SGDNesterov", groups(), 0.1, {})
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["nesterov"] is True
    assert make_optimizer("SGDNesterov", groups(), 0.1, {"momentum": 0.8})[0].defaults["momentum"] == 0.8
    with pytest.raises(UserError, match="`nesterov`.*set for you"):
        make_optimizer("SGDNesterov", groups(), 0.1, {"nesterov": False})


def test_unknown_optimizer_args_key_names_it_and_lists_parameters():
    with pytest.raises(UserError) as error:
        make_optimizer("AdamW", groups(), 1e-4, {"weight_decya": 0.01})
    message = str(error.value)
    assert "optimizer_args" in message and "`weight_decya`" in message and "Did you mean `weight_decay`" in message
    assert "betas" in message and "amsgrad" in message and "params" not in message.split("accepts:")[1]


def test_rejected_optimizer_args_value_and_lr_key():
    with pytest.raises(UserError, match="rejected by torch.optim.adamw.AdamW"):
        make_optimizer("AdamW", groups(), 1e-4, {"betas": (2.0, 0.9)})
    with pytest.raises(UserError, match="learning_rate"):
        make_optimizer("AdamW", groups(), 1e-4, {"lr": 1e-3})


def test_unknown_names_and_missing_packages():
    with pytest.raises(UserError, match="did you mean `Prodigy`"):
        make_optimizer("Prodigi", groups(), 1e-4, {})
    with pytest.raises(UserError, match="unknown optimizer_type `radam`"):  # torch.optim names are case-sensitive
        make_optimizer("radam", groups(), 1e-4, {})
    with pytest.raises(UserError, match="no class `Adamm`.*Did you mean `Adam`"):
        make_optimizer("torch.optim.Adamm", groups(), 1e-4, {})
    with pytest.raises(UserError, match="pip install nonexistent_pkg"):
        make_optimizer("nonexistent_pkg.optim.Fast", groups(), 1e-4, {})


def test_missing_bitsandbytes_says_cuda_only_and_suggests_adamw(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` raise ImportError
    for name in ("AdamW8bit", "PagedAdamW8bit", "Lion8bit", "SGDNesterov8bit"):
        with pytest.raises(UserError) as error:
            make_optimizer(name, groups(), 1e-4, {})
        message = str(error.value)
        assert "CUDA" in message and "pip install bitsandbytes" in message and 'optimizer_type = "AdamW"' in message


def test_adafactor_relative_step_default():
    optimizer, notes = make_optimizer("Adafactor", groups(lr_te=1e-5), 1e-3, {})
    assert optimizer.defaults["relative_step"] is True and optimizer.defaults["lr"] is None
    assert optimizer.defaults["scale_parameter"] is True and optimizer.defaults["warmup_init"] is False
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-3]  # shown before the first step only
    assert any("replaced by `adafactor`" in n for n in notes) and any("learning_rate_te" in n for n in notes)
    step(optimizer)


def test_kohya_names_are_case_insensitive():
    assert type(make_optimizer("sgdnesterov", groups(), 0.1, {})[0]) is torch.optim.SGD
    assert type(make_optimizer("ADAMW", groups(), 0.1, {})[0]) is torch.optim.AdamW


def test_adafactor_fixed_lr_and_warmup_init():
    args = {"relative_step": False, "scale_parameter": False, "warmup_init": False}
    optimizer, notes = make_optimizer("AdaFactor", groups(), 1e-4, args)
    assert optimizer.defaults["lr"] == 1e-4 and notes == []
    optimizer, notes = make_optimizer("adafactor", groups(), 1e-4, {"relative_step": False, "warmup_init": True})
    assert optimizer.defaults["relative_step"] is True and "warmup_init=True needs relative_step" in notes[0]


def test_adaptive_optimizers_advise_lr_one_and_need_one_lr():
    pytest.importorskip("prodigyopt")
    _, notes = make_optimizer("Prodigy", groups(), 1e-4, {"d_coef": 2.0})
    assert len(notes) == 1 and "about 1.0" in notes[0]
    assert make_optimizer("Prodigy", groups(), 1.0, {})[1] == []
    assert make_optimizer("Prodigy", groups(lr_te=0.0), 1.0, {})[1] == []  # 0 freezes a group: allowed
    with pytest.raises(UserError, match="same learning rate"):
        make_optimizer("Prodigy", groups(lr_te=0.5), 1.0, {})


def test_schedule_free_is_in_train_mode_with_a_note():
    pytest.importorskip("schedulefree")
    optimizer, notes = make_optimizer("AdamWScheduleFree", groups(), 1e-3, {"warmup_steps": 10})
    assert optimizer.param_groups[0]["train_mode"] is True
    assert "schedule-free" in notes[0]


def test_a_resumed_optimizer_keeps_this_runs_update_implementation():
    from library.training.optimizers import load_optimizer_state

    saved, _ = make_optimizer("AdamW", groups(), 1e-4, {"foreach": False})  # as an older run saved it
    for group in saved.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    saved.step()
    resumed, _ = make_optimizer("AdamW", groups(), 1e-4, {})
    load_optimizer_state(resumed, saved.state_dict())
    assert all(g["foreach"] is True for g in resumed.param_groups)  # this run's choice on the CPU
    assert len(resumed.state) == len(saved.state) and resumed.param_groups[0]["lr"] == 1e-4  # the rest is loaded
