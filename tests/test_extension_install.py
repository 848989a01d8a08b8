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
    requirements = install.toolkit_requirements(ROOT)
    present = {"accelerate", "tqdm"}
    wanted = install.to_install(requirements, lambda name: name in present, pinned)
    names = {install.canonical(line.split(">")[0].split("<")[0].split("=")[0]) for line in wanted}
    assert "diffusers" in names and "prodigyopt" in names  # missing: installed
    assert not names & {"torch", "numpy", "pillow", "transformers", "lion-pytorch", "accelerate", "tqdm"}
    assert not any("tomli" in line for line in wanted)  # its marker (python < 3.11) is false here


def test_pip_runs_with_the_webuis_present_packages_held_at_their_versions():
    held = install.held_versions({"numpy", "torch", "no-such-package"})
    import numpy
    import torch

    assert f"numpy=={numpy.__version__}" in held and any(h.startswith("torch==") for h in held)
    assert not any(h.startswith("no-such-package") for h in held)
