"""Test support: editing the command lines the `train_args` fixture makes."""

from __future__ import annotations


def without_seed(args: list[str]) -> list[str]:
    """The same arguments with `--seed N` left out, so the run draws its own seed."""
    i = args.index("--seed")
    return args[:i] + args[i + 2:]
