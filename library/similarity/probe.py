"""The reference calculator's math, reproduced exactly.

Per block, in block order, a random X of the base's to_q shape is drawn from one generator seeded once. The
reference then builds three fresh `nn.Linear` layers whose default initialisation draws from the same
generator before the next block's X, so every published number depends on those draws: they are made here
too. Each model's "attention" on X is softmax(Q K^T) (no scaling, no heads) combined with V by the reference's
einsum `ik,jk->ik` quirk; a block's similarity is the mean row-wise cosine similarity of the two outputs, and
the model's is the mean over blocks, in percent. The base side (X and its output) is computed once in a
`BaseProbe`, so comparing many models, or the same model again during training, does not redo it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UserError
from .weights import AttentionWeights


@dataclass(frozen=True)
class BaseProbe:
    """The base model's side: per block name, the random input X and the base's attention output on it."""

    base: AttentionWeights
    seed: int
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Similarity:
    """Percentages: the model's similarity to the base and each block's."""

    similarity: float
    blocks: dict[str, float]


def attention_output(x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(X Wq^T (X Wk^T)^T) combined with X Wv^T as the reference does: A[i,k] = S[i,k] * sum_j V[j,k]."""
    query, key, value = F.linear(x, q), F.linear(x, k), F.linear(x, v)  # what the reference's bias-free nn.Linear does
    scores = F.softmax(torch.einsum("ij, kj -> ik", query, key), dim=-1)
    return torch.einsum("ik, jk -> ik", scores, value)


def probe_base(base: AttentionWeights, seed: int) -> BaseProbe:
    """Draw X per block in block order. A private generator gives the numbers `torch.manual_seed(seed)` would,
    without moving the global RNG under a training run that asks for a drift check."""
    generator = torch.Generator().manual_seed(seed)
    inputs, outputs = {}, {}
    for name, (q, k, v) in base.qkv.items():
        rows, cols = q.shape
        inputs[name] = torch.randn([cols, rows], generator=generator)
        outputs[name] = attention_output(inputs[name], q, k, v)
        for _ in range(3):  # nn.Linear(rows, cols, bias=False)'s default init, drawn and thrown away
            torch.nn.init.kaiming_uniform_(torch.empty(cols, rows), a=math.sqrt(5), generator=generator)
    return BaseProbe(base, seed, inputs, outputs)


def compare(probe: BaseProbe, other: AttentionWeights) -> Similarity:
    sims = {}
    for name, x in probe.inputs.items():
        q, k, v = other.qkv[name]
        base_shape = probe.base.qkv[name][0].shape
        if q.shape != base_shape:
            raise UserError(f"{other.source} and {probe.base.source} have different architectures: block {name} "
                            f"to_q is {list(q.shape)} in the first and {list(base_shape)} in the second. "
                            f"Compare models of the same architecture (SD1 with SD1, SD2 with SD2).")
        sims[name] = torch.mean(torch.cosine_similarity(probe.outputs[name], attention_output(x, q, k, v)))
    total = torch.mean(torch.stack(list(sims.values()))) * 1e2
    return Similarity(total.item(), {name: (s * 1e2).item() for name, s in sims.items()})
