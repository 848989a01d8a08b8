"""Training timesteps: which t each sample is noised to, and per-timestep table look-ups.

Draws go through an explicit generator so a seed (and a saved generator state) fixes the run.
"""

from __future__ import annotations

import torch

from ..errors import UserError


def sample_timesteps(batch: int, generator: torch.Generator, min_timestep: int | None = None,
                     max_timestep: int | None = None, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Uniform integer t in [min, max) per sample, as kohya's get_timesteps; min == max trains that one t.

    Drawn on the generator's device, so one seed gives the same numbers on CPU and GPU."""
    low = 0 if min_timestep is None else min_timestep
    high = num_train_timesteps if max_timestep is None else max_timestep
    if not 0 <= low <= high <= num_train_timesteps or low == num_train_timesteps:
        raise UserError(f"timestep range min_timestep={low}, max_timestep={high} is empty: need "
                        f"0 <= min_timestep <= max_timestep <= {num_train_timesteps} (max is exclusive)")
    if low == high:
        timesteps = torch.full((batch,), high, dtype=torch.long, device=generator.device)
    else:
        timesteps = torch.randint(low, high, (batch,), generator=generator, device=generator.device)
    return timesteps


def at_timesteps(table: torch.Tensor, timesteps: torch.Tensor, ndim: int = 1) -> torch.Tensor:
    """`table[t]` per sample as float32 on the timesteps' device, shaped [B, 1, ...] to broadcast over `ndim` dims."""
    values = table.to(device=timesteps.device, dtype=torch.float32)[timesteps.long()]
    return values.view(-1, *([1] * (ndim - 1)))
