#!/usr/bin/env bash
# Run here, with network, before bench/gpu_check.sh goes to a GPU machine without one: the wheels that machine's
# Python 3.12 lacks (it has torch, transformers and accelerate) into .whl/ (git-ignored), for Python 3.12 x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFUSERS=$(.venv/bin/python -c "import diffusers; print(diffusers.__version__)")  # the version the tests use
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "diffusers==$DIFFUSERS" importlib_metadata lion-pytorch prodigyopt
ls -la .whl
