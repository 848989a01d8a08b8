"""Compare model files: one base against others as the reference tool does, or every ordered pair (matrix).

Each model's probed weights are read once. In the matrix, row i uses model i as the base (its random
inputs), as running the reference with that model first would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .blocks import DEFAULT_SEED, block_set
from .files import read_attention_weights, short_hash
from .probe import Similarity, compare, probe_base
from .weights import AttentionWeights

FAMILY_NAMES = {"sd1": "SD1", "sd2": "SD2"}


@dataclass(frozen=True)
class Model:
    path: Path
    hash: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Result:
    model: Model
    similarity: Similarity


@dataclass(frozen=True)
class Report:
    """Base-vs-others results; `matrix[i][j]` (percent, row = base) over `models` = [base, *others] when asked."""

    base: Model
    blocks: tuple[str, ...]
    seed: int
    results: list[Result]
    models: list[Model]
    matrix: list[list[float]] | None
    warnings: list[str]


def compare_files(base: Path, others: list[Path], blocks: str = "reference", seed: int = DEFAULT_SEED,
                  matrix: bool = False) -> Report:
    chosen = block_set(blocks)
    paths = [base, *others]
    weights = [read_attention_weights(p, chosen) for p in paths]
    models = [Model(p, short_hash(p)) for p in paths]
    probes = [probe_base(w, seed) for w in (weights if matrix else weights[:1])]  # row i: model i as the base
    results = [Result(m, compare(probes[0], w)) for m, w in zip(models[1:], weights[1:])]
    table = [[compare(p, w).similarity for w in weights] for p in probes] if matrix else None
    return Report(models[0], tuple(b.name for b in chosen), seed, results, models, table,
                  family_warnings(weights[0], weights[1:]))


def family_warnings(base: AttentionWeights, others: list[AttentionWeights]) -> list[str]:
    """SD1 and SD2 UNets share attention shapes, so a number comes out; it compares unrelated models."""
    return [f"{base.source} is {FAMILY_NAMES[base.family]} but {w.source} is {FAMILY_NAMES[w.family]}: the "
            f"number compares models with different text encoders and says little about how related they are."
            for w in others if base.family and w.family and w.family != base.family]
