#!/usr/bin/env bash
# One-step set-up: a virtual environment in .venv with everything the scripts and tests need.
# Safe to run again; it only installs what is missing. Set PYTHON to choose the interpreter and
# TORCH_SPEC to choose the torch build (default torch==2.13.0, the CPU build on a machine without CUDA).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "$TORCH_SPEC"
fi
.venv/bin/python -m pip install -q -r requirements.txt -r requirements-dev.txt
# The standalone UI's own environment (gradio and what it pins stay out of the toolkit's), and two small ones with
# the gradio of A1111 1.10 and of Forge, in which the tests build the tab.
for ui in "" -a1111 -forge; do
  [ -x ".venv-ui$ui/bin/python" ] || "$PYTHON" -m venv ".venv-ui$ui"
  ".venv-ui$ui/bin/python" -m pip install -q -r "extension/requirements-ui$ui.txt"
done
