"""The WebUI's entry point: registers the Certain Strategy tab and its three settings. It imports no training code:
the tab starts the toolkit's scripts as jobs, with the toolkit's own Python."""

from __future__ import annotations

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


def on_ui_tabs():
    from certain_strategy_ui.ui import build_ui

    return [(build_ui(current_settings(), webui_checkpoints), "Certain Strategy", "certain_strategy")]


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_ui_tabs(on_ui_tabs)
