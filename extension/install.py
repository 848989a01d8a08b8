"""Run by the WebUI at every start (`python install.py`, the webui root as working folder): installs the toolkit's
requirements that are missing, and never installs, upgrades or downgrades a package the WebUI brings or pins
(torch, torchvision, xformers, numpy, gradio and every name in its requirements_versions.txt): a requirement whose
package is present is left as it is, whatever its version, those packages are never asked for, and pip runs with
every present one of them held at its installed version (a constraints file), so no dependency of a new package
moves them either.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

NEVER = {"torch", "torchvision", "torchaudio", "xformers", "numpy", "gradio", "gradio-client", "fastapi", "pydantic"}


def toolkit_requirements(toolkit: Path) -> list[str]:
    """The toolkit's requirement lines without comments, for this Python (markers evaluated)."""
    from packaging.requirements import Requirement

    lines = []
    for line in (toolkit / "requirements.txt").read_text(encoding="utf-8").splitlines():
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

    toolkit = Path(__file__).resolve().parents[1]
    if not (toolkit / "requirements.txt").is_file():
        print(f"[Certain Strategy] {toolkit} holds no requirements.txt: link or copy extension/ from a checkout of "
              f"the toolkit (see its README); nothing installed", file=sys.stderr)
        return
    pinned = pinned_names(Path.cwd())
    missing = to_install(toolkit_requirements(toolkit), launch.is_installed, pinned)
    if not missing:
        return
    constraints = Path(__file__).with_name("webui-constraints.txt")
    constraints.write_text("\n".join(held_versions(NEVER | pinned)) + "\n", encoding="utf-8")
    for requirement in missing:
        launch.run_pip(f'install "{requirement}" -c "{constraints}"', f"Certain Strategy requirement: {requirement}")


if __name__ == "__main__":
    main()
