"""Which UNet self-attention layers the calculator probes, and their tensor names in both key layouts.

The reference tool reads `output_blocks.3`..`10`; its later variant adds input blocks 1, 2, 4, 5, 7, 8, the
middle block and output block 11. Each block is probed through the first transformer block's `attn1`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from ..models.unet_keys import PREFIX

PROJECTIONS = ("to_q", "to_k", "to_v")
_ATTN1 = "transformer_blocks.0.attn1"


@dataclass(frozen=True)
class Block:
    """One probed attention: its report label, its LDM module path and its diffusers module path."""

    name: str
    ldm: str
    diffusers: str

    def ldm_keys(self) -> tuple[str, str, str]:
        return tuple(f"{PREFIX}{self.ldm}.1.{_ATTN1}.{p}.weight" for p in PROJECTIONS)  # type: ignore[return-value]

    def diffusers_keys(self) -> tuple[str, str, str]:
        return tuple(f"{self.diffusers}.{_ATTN1}.{p}.weight" for p in PROJECTIONS)  # type: ignore[return-value]


def input_block(n: int) -> Block:
    """`input_blocks.n` (n = 1 is the first after conv_in): down level (n-1)//3, attention (n-1)%3."""
    return Block(f"IN{n:02d}", f"input_blocks.{n}", f"down_blocks.{(n - 1) // 3}.attentions.{(n - 1) % 3}")


def output_block(n: int) -> Block:
    """`output_blocks.n`: up level n//3, attention n%3 (three blocks per up level)."""
    return Block(f"OUT{n:02d}", f"output_blocks.{n}", f"up_blocks.{n // 3}.attentions.{n % 3}")


MIDDLE = Block("MID", "middle_block", "mid_block.attentions.0")

BLOCK_SETS: dict[str, tuple[Block, ...]] = {
    "reference": tuple(output_block(n) for n in range(3, 11)),
    "extended": (*(input_block(n) for n in (1, 2, 4, 5, 7, 8)), MIDDLE, *(output_block(n) for n in range(3, 12))),
}
DEFAULT_SEED = 114514


def block_set(name: str) -> tuple[Block, ...]:
    if name not in BLOCK_SETS:
        raise UserError(f"unknown block set `{name}`; use one of: {', '.join(BLOCK_SETS)}.")
    return BLOCK_SETS[name]
