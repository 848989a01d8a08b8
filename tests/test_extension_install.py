"""extension/install.py: what it asks pip for, given what the WebUI has and pins (no pip is run here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("certain_install", ROOT / "extension" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_only_missing_requirements_are_installed_and_never_what_the_webui_brings_or_pins(tmp_path):
    (tmp_path / "requirements_versions.txt").write_text("# pins\nGitPython==3.1.32\nPillow==9.5.0\n"
                                                        "transformers==4.30.2\nlion_pytorch==0.1.2\n")
    pinned = install.pinned_names(tmp_path)
    assert pinned == {"gitpython", "pillow", "transformers", "lion-pytorch"}
    (tmp_path / "requirements.txt").write_text("diffusers>=0.32  # a comment\nprodigyopt>=1.0\ntorch>=2.6,<3\n"
                                               "numpy>=1.24\npillow>=10\ntransformers>=4.44\nlion-pytorch>=0.2\n"
                                               "accelerate>=0.33\ntqdm\ntomli>=2; python_version < \"3.11\"\n")
    requirements = install.read_requirements(tmp_path / "requirements.txt")
    present = {"accelerate", "tqdm"}
    wanted = install.to_install(requirements, lambda name: name in present, pinned)
    assert wanted == ["diffusers>=0.32", "prodigyopt>=1.0"]  # missing: installed; the rest never
    assert not any("tomli" in line for line in requirements)  # its marker (python < 3.11) is false here


def test_the_webui_gets_only_what_the_tab_needs_not_the_training_packages():
    """The jobs run with the toolkit's .venv; the WebUI's environment gets the tab's own needs (psutil) only."""
    wanted = install.read_requirements(ROOT / "extension" / "requirements-tab.txt")
    assert [install.canonical(line.split(">")[0]) for line in wanted] == ["psutil"]


def test_pip_runs_with_the_webuis_present_packages_held_at_their_versions():
    held = install.held_versions({"numpy", "torch", "no-such-package"})
    import numpy
    import torch

    assert f"numpy=={numpy.__version__}" in held and any(h.startswith("torch==") for h in held)
    assert not any(h.startswith("no-such-package") for h in held)


def test_main_installs_the_tabs_missing_needs_with_the_webuis_packages_held(monkeypatch, tmp_path):
    """install.main() as the WebUI runs it: a stand-in `launch` module (is_installed, run_pip) records what pip is
    asked for; the WebUI's root (the working folder) pins a package."""
    import sys
    import types

    asked = []

    def run_pip(command, desc=None):
        constraints = command.split('-c "')[1].rstrip('"')
        asked.append((command, open(constraints, encoding="utf-8").read()))

    monkeypatch.setitem(sys.modules, "launch", types.SimpleNamespace(is_installed=lambda name: False, run_pip=run_pip))
    (tmp_path / "requirements_versions.txt").write_text("psutil==5.9.5\n")
    monkeypatch.chdir(tmp_path)
    install.main()
    assert asked == []  # the WebUI pins psutil: left as it is
    (tmp_path / "requirements_versions.txt").write_text("GitPython==3.1.32\n")
    install.main()
    assert [command.split(" -c ")[0] for command, _ in asked] == ['install "psutil>=5.9"']
    assert "torch==" in asked[0][1] and "numpy==" in asked[0][1]  # held at their versions
    assert not list(tmp_path.iterdir())[1:] and not (ROOT / "extension" / "webui-constraints.txt").exists()
