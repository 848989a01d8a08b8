"""Where the toolkit is, which Python runs its scripts, and where the UI's runs go: the extension's three settings
(A1111 Settings → Certain Strategy; the standalone app's flags), with defaults that work for a checkout whose
`extension/` is linked or copied into the WebUI's `extensions/`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

SECTION = ("certain_strategy", "Certain Strategy")
KEYS = {"toolkit": "certain_strategy_toolkit", "python": "certain_strategy_python", "output": "certain_strategy_output"}
LABELS = {"toolkit": "Certain Strategy toolkit folder (holds train_certain.py)",
          "python": "Python that runs the toolkit's scripts (its own virtual environment)",
          "output": "Folder for the runs started from this tab"}


@dataclass(frozen=True)
class UiSettings:
    toolkit: Path
    python: str
    output: Path

    @classmethod
    def defaults(cls) -> UiSettings:
        toolkit = Path(__file__).resolve().parents[2]  # extension/certain_strategy_ui/ -> the checkout
        venv = toolkit / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
        return cls(toolkit, str(venv), toolkit / "ui_runs")  # never the WebUI's own: it lacks the toolkit's packages

    @classmethod
    def from_values(cls, values: dict[str, str]) -> UiSettings:
        """Settings from the user's values by name (toolkit, python, output); empty ones take the defaults."""
        base = cls.defaults()
        return cls(Path(values.get("toolkit") or base.toolkit), values.get("python") or base.python,
                   Path(values.get("output") or base.output))

    def check(self) -> list[str]:
        """What is wrong with them, in words (empty when nothing is)."""
        problems = []
        if not (self.toolkit / "train_certain.py").is_file():
            problems.append(f"{self.toolkit}: no train_certain.py here; set the toolkit folder in the settings")
        if not Path(self.python).is_file():
            problems.append(f"{self.python}: no such Python; run `bash setup.sh` in the toolkit folder to make its "
                            f".venv, or set the Python of the toolkit's virtual environment")
        return problems

    def presets(self) -> list[Path]:
        return sorted((self.toolkit / "configs" / "presets").glob("*.toml"))
