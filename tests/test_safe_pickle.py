"""`.ckpt` pickles load as data only: what old SD checkpoints carry loads, anything that runs code is refused."""

import builtins
import os
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from library.errors import UserError
from library.models import safe_pickle
from library.models.safe_pickle import ModelCheckpoint, load_checkpoint_pickle

FORMATS = {"zip": True, "legacy": False}


def save(obj, path, fmt="zip"):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_checkpoint_loads(tmp_path, fmt):
    weights = {"model.diffusion_model.w": torch.arange(6.0).reshape(2, 3), "cond_stage_model.b": torch.ones(4)}
    path = save({"state_dict": weights, "global_step": 5, "epoch": 1}, tmp_path / "model.ckpt", fmt)
    loaded = load_checkpoint_pickle(path)
    assert loaded["global_step"] == 5 and loaded["epoch"] == 1
    assert loaded["state_dict"].keys() == weights.keys()
    for key, tensor in weights.items():
        assert torch.equal(loaded["state_dict"][key], tensor)
        assert loaded["state_dict"][key].device.type == "cpu"


def test_lightning_model_checkpoint_loads_as_a_stand_in(tmp_path, monkeypatch):
    """Pickled while a fake `pytorch_lightning` is importable, loaded after it is gone, as on a plain install."""
    with monkeypatch.context() as m:
        module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
        real_class = type("ModelCheckpoint", (), {"__module__": module.__name__})
        module.ModelCheckpoint = real_class
        for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
            m.setitem(sys.modules, name, types.ModuleType(name))
        m.setitem(sys.modules, module.__name__, module)
        callback = real_class()
        callback.monitor, callback.best_model_score = "val/loss", torch.tensor(0.25)
        ckpt = {"state_dict": {}, "callbacks": {real_class: {"best_model_path": "x.ckpt"}}, "cb": callback}
        path = save(ckpt, tmp_path / "lightning.ckpt")
    assert "pytorch_lightning" not in sys.modules

    loaded = load_checkpoint_pickle(path)
    assert loaded["callbacks"] == {ModelCheckpoint: {"best_model_path": "x.ckpt"}}
    assert isinstance(loaded["cb"], ModelCheckpoint)
    assert loaded["cb"].monitor == "val/loss" and float(loaded["cb"].best_model_score) == 0.25
    assert "pytorch_lightning" not in sys.modules


@pytest.mark.parametrize("fmt", FORMATS)
def test_numpy_scalars_and_arrays_load(tmp_path, fmt):
    ckpt = {"state_dict": {}, "best": np.float64(0.5), "step": np.int64(7), "hist": np.arange(3, dtype=np.float32)}
    loaded = load_checkpoint_pickle(save(ckpt, tmp_path / "np.ckpt", fmt))
    assert loaded["best"] == 0.5 and isinstance(loaded["best"], np.float64)
    assert loaded["step"] == 7 and isinstance(loaded["step"], np.int64)
    np.testing.assert_array_equal(loaded["hist"], np.arange(3, dtype=np.float32))


def test_extra_globals_are_allowed_only_during_the_load(tmp_path):
    path = save({"best": np.float64(0.5)}, tmp_path / "np.ckpt")
    load_checkpoint_pickle(path)
    # Compare only our entries: torch and other libraries register their own globals as they are imported.
    after = torch.serialization.get_safe_globals()
    assert not [entry for entry in safe_pickle._allowed_globals() if entry in after]


class Payload:
    """Pickles as a call to `func(*args)`: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "func, global_name, make_args",
    [
        (builtins.open, f"{builtins.open.__module__}.open", lambda target: (str(target), "w")),
        (os.system, f"{os.system.__module__}.system", lambda target: (f"touch '{target}'",)),
        (builtins.eval, "builtins.eval", lambda target: (f"open({str(target)!r}, 'w')",)),
    ],
)
def test_pickle_that_calls_code_is_refused_and_never_runs(tmp_path, fmt, func, global_name, make_args):
    target = tmp_path / "pwned"
    path = save({"state_dict": {}, "x": Payload(func, *make_args(target))}, tmp_path / "evil.ckpt", fmt)

    with pytest.raises(UserError) as refused:
        load_checkpoint_pickle(path)
    message = str(refused.value)
    assert str(path) in message
    assert global_name in message
    assert "malicious" in message and "not loaded" in message and ".safetensors" in message
    assert not target.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all\n" * 10, save_safetensors({"w": torch.ones(2)})],
    ids=["empty", "text", "safetensors"],
)
def test_non_pickle_file_is_a_clear_user_error(tmp_path, content):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        load_checkpoint_pickle(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_checkpoint_is_a_user_error(tmp_path, fmt):
    path = save({"state_dict": {"w": torch.ones(1000)}}, tmp_path / "model.ckpt", fmt)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(UserError, match="model.ckpt"):
        load_checkpoint_pickle(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint_pickle(tmp_path / "missing.ckpt")


def test_checkpoint_that_is_not_a_dict_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint dict"):
        load_checkpoint_pickle(save(torch.ones(3), tmp_path / "tensor.pt"))
