"""Run by the WebUI at every start (`python install.py`, the webui root as working folder): installs what the tab
itself needs (`requirements-tab.txt`) when it is missing. The training packages stay out of the WebUI's environment:
the tab's jobs run with the toolkit's own `.venv`, which `bash setup.sh` makes (a missing one is named here). It
never installs, upgrades or downgrades a package the WebUI brings or pins (torch, torchvision, xformers, numpy,
gradio and every name in its requirements_versions.txt): a requirement whose package is present is left as it is,
whatever its version, those packages are never asked for, and pip runs with every present one of them held at its
installed version (a constraints file), so no dependency of a new package moves them either.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

NEVER = {"torch", "torchvision", "torchaudio", "xformers", "numpy", "gradio", "gradio-client", "fastapi", "pydantic"}


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of `path` without comments, for this Python (markers evaluated)."""
    from packaging.requirements import Requirement

    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and (Requirement(line).marker is None or Requirement(line).marker.evaluate()):
            lines.append(line)
    return lines


def pinned_names(webui: Path) -> set[str]:
    """The package names the WebUI pins in requirements_versions.txt (empty when there is none)."""
    pins = webui / "requirements_versions.txt"
    if not pins.is_file():
        return set()
    return {canonical(re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0])
            for line in pins.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def to_install(requirements: list[str], is_installed: Callable[[str], bool], pinned: set[str]) -> list[str]:
    """The requirements to install: missing, and neither in NEVER nor pinned by the WebUI."""
    from packaging.requirements import Requirement

    wanted = []
    for line in requirements:
        name = canonical(Requirement(line).name)
        if name not in NEVER and name not in pinned and not is_installed(name):
            wanted.append(line)
    return wanted


def held_versions(names: set[str]) -> list[str]:
    """`name==version` for each of `names` that is installed: the constraints that keep them where they are."""
    from importlib.metadata import PackageNotFoundError, version

    held = []
    for name in sorted(names):
        try:
            held.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return held


def main() -> None:
    import launch  # the WebUI's: is_installed and run_pip (which honours --skip-install and INDEX_URL)

    here = Path(__file__).resolve().parent
    toolkit_python = here.parent / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not toolkit_python.is_file():
        print(f"[Certain Strategy] the tab's jobs run with the toolkit's own Python, and {toolkit_python} is missing: "
              f"run `bash setup.sh` in {here.parent}, or set another in Settings -> Certain Strategy", file=sys.stderr)
    pinned = pinned_names(Path.cwd())
    missing = to_install(read_requirements(here / "requirements-tab.txt"), launch.is_installed, pinned)
    if not missing:
        return
    handle, constraints = tempfile.mkstemp(prefix="certain-strategy-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:  # one file per start: two WebUIs never share it
            f.write("\n".join(held_versions(NEVER | pinned)) + "\n")
        for requirement in missing:
            launch.run_pip(f'install "{requirement}" -c "{constraints}"',
                           f"Certain Strategy requirement: {requirement}")
    finally:
        os.unlink(constraints)


if __name__ == "__main__":
    main()
