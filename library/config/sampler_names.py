"""The sampler names a config or a prompt may use, without torch: config checks them at load time, `sampling` runs them.

Our keys are kohya's `--ss` / `sample_sampler` names; A1111 writes the labels as `Sampler:` in the infotext.
"""

from __future__ import annotations

from ..errors import UserError

SAMPLER_LABELS = {"euler_a": "Euler a", "euler": "Euler", "dpmpp_2m": "DPM++ 2M", "ddim": "DDIM"}
# kohya's spellings ("dpmsolver++" is diffusers' DPMSolverMultistep, order 2: the same DPM++ 2M solver, here on
# A1111's Karras schedule) and A1111's pre-1.9 label that named the schedule with the sampler.
_ALIASES = {"k_euler_a": "euler_a", "k_euler": "euler", "dpmsolver++": "dpmpp_2m", "dpm++ 2m karras": "dpmpp_2m"}


def sampler_key(name: str) -> str:
    """Our key for a sampler given as a key, a kohya alias or an A1111 label ("Euler a"), any case."""
    wanted = name.strip().lower()
    by_name = {**{k: k for k in SAMPLER_LABELS}, **_ALIASES,
               **{label.lower(): k for k, label in SAMPLER_LABELS.items()}}
    if wanted not in by_name:
        known = ", ".join(f"{k} ({label})" for k, label in SAMPLER_LABELS.items())
        raise UserError(f"unknown or not yet supported sampler {name!r}; available: {known}")
    return by_name[wanted]
