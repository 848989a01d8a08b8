"""Similarity of in-memory state dicts, for the trainer's drift checks: the base side is computed once.

    probe = probe_state_dict(unet.state_dict())              # once, for the base
    similarity_of_probe(probe, unet.state_dict()).similarity  # percent, at each check

Keys may be LDM (`model.diffusion_model.*`) or the diffusers UNet's own (`down_blocks...`). The math runs on
the CPU in fp32 whatever device and dtype the weights are on, so the numbers match the files' numbers.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .blocks import DEFAULT_SEED, block_set
from .probe import BaseProbe, Similarity, compare, probe_base
from .weights import weights_of_state_dict


def probe_state_dict(base: Mapping[str, torch.Tensor], blocks: str = "reference", seed: int = DEFAULT_SEED,
                     source: str = "base state dict") -> BaseProbe:
    """The base's random inputs and attention outputs, to compare any number of later states against."""
    return probe_base(weights_of_state_dict(base, block_set(blocks), source), seed)


def similarity_of_probe(probe: BaseProbe, other: Mapping[str, torch.Tensor],
                        source: str = "state dict") -> Similarity:
    return compare(probe, weights_of_state_dict(other, probe.base.blocks, source))


def similarity_of_weights(base: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor],
                          blocks: str = "reference", seed: int = DEFAULT_SEED) -> Similarity:
    return similarity_of_probe(probe_state_dict(base, blocks, seed), other)
