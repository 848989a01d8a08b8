"""The WebUI's entry point: registers the Certain Strategy tab and its three settings. It imports no training code:
the tab starts the toolkit's scripts as jobs, with the toolkit's own Python."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # A1111 prepends the extension folder; so do we

from modules import script_callbacks, sd_models, shared  # noqa: E402

from certain_strategy_ui.settings import KEYS, LABELS, SECTION, UiSettings  # noqa: E402


def on_ui_settings() -> None:
    defaults = UiSettings.defaults()
    values = {"toolkit": str(defaults.toolkit), "python": defaults.python, "output": str(defaults.output)}
    for name, key in KEYS.items():
        shared.opts.add_option(key, shared.OptionInfo(values[name], LABELS[name], section=SECTION))


def current_settings() -> UiSettings:
    return UiSettings.from_values({name: getattr(shared.opts, key, "") for name, key in KEYS.items()})


def webui_checkpoints() -> list[str]:
    """The WebUI's checkpoint files, by path (its list, as the checkpoint dropdown shows it)."""
    return sorted(info.filename for info in sd_models.checkpoints_list.values())


def loaded_model():
    """The WebUI's model if one is loaded, without loading one (`shared.sd_model` loads a checkpoint when none is)."""
    data = getattr(sd_models, "model_data", None)
    return getattr(data, "sd_model", None) if data is not None else getattr(shared, "sd_model", None)


def generation_lock():
    """The WebUI's lock around generation (A1111 and Forge: `modules.call_queue.queue_lock`): the model never moves in
    the middle of a txt2img run."""
    try:
        from modules.call_queue import queue_lock
    except ImportError:
        return contextlib.nullcontext()
    return queue_lock


def free_webui_model() -> None:
    """Off the GPU while training runs (A1111 1.10: to the CPU; Forge: unloaded, loaded again on demand)."""
    with generation_lock():
        if loaded_model() is not None:
            sd_models.unload_model_weights()


def reload_webui_model() -> None:
    """Back on the GPU (what A1111's reload button does); a no-op in Forge, which loads on demand."""
    with generation_lock():
        model = loaded_model()
        if model is not None:
            sd_models.send_model_to_device(model)


def on_ui_tabs():
    from certain_strategy_ui.train_tab import WebuiModel
    from certain_strategy_ui.ui import build_ui

    blocks = build_ui(current_settings(), webui_checkpoints, WebuiModel(free_webui_model, reload_webui_model))
    return [(blocks, "Certain Strategy", "certain_strategy")]


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_ui_tabs(on_ui_tabs)
