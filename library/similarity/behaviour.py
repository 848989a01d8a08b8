"""Behaviour distance: how differently two models predict noise for the same single-word prompts.

Weight similarity says how far the attention weights moved; this says what the move does, word by word. Every
model sees the same fixed inputs (unit-Gaussian latents at timesteps where a noisy latent is mostly noise, so
the inputs look like what generation feeds it; one set shared by all words), so a word's distance is

    drift(word) = RMS(prediction_other − prediction_base) / RMS(prediction_base)

over its inputs: 0 for the same weights, about 1.4 for two unrelated models. The base's predictions are computed
once (`predictions`) and kept, so the training run's drift meter needs no second model in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from ..text.conditioning import chunk_tokens, encode_chunks

if TYPE_CHECKING:
    from ..models.sd_model import SDModel

PROBE_TIMESTEPS = (400, 650, 900)  # the first half of generation, where a prompt decides what is drawn
PROBE_SEED = 20250101
# Without a word list: sixteen of the commonest Danbooru general tags, the words anime models are prompted with most.
COMMON_WORDS = ("1girl", "solo", "long hair", "smile", "short hair", "blue eyes", "blonde hair", "brown hair",
                "black hair", "skirt", "dress", "hat", "school uniform", "red eyes", "flower", "sky")


@dataclass(frozen=True)
class ProbeInputs:
    """The fixed inputs every model is asked about: `latents[k]` at `timesteps[k]`, for each word."""

    words: tuple[str, ...]
    latents: torch.Tensor  # [K, 4, h, w], float32, CPU
    timesteps: torch.Tensor  # [K], long

    @classmethod
    def make(cls, words: Sequence[str], latent_size: tuple[int, int], seed: int = PROBE_SEED,
             timesteps: Sequence[int] = PROBE_TIMESTEPS, channels: int = 4) -> ProbeInputs:
        """`latent_size` is (height, width) in latent pixels (image size / 8)."""
        if not words:
            raise ValueError("the behaviour probe needs at least one word")
        generator = torch.Generator().manual_seed(seed)
        latents = torch.randn((len(timesteps), channels, *latent_size), generator=generator)
        return cls(tuple(words), latents, torch.tensor(list(timesteps), dtype=torch.long))


@torch.no_grad()
def predictions(model: SDModel, inputs: ProbeInputs, clip_skip: int | None = None) -> torch.Tensor:
    """The model's outputs on the inputs, [words, K, 4, h, w] float32 on the CPU; one U-Net batch per word."""
    unet, te = model.unet, model.text_encoder
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    tokens = chunk_tokens(model.tokenizer, list(inputs.words), 1, model.family)
    cond = encode_chunks(te, tokens, clip_skip, model.family).to(device, dtype)
    k = len(inputs.timesteps)
    latents, timesteps = inputs.latents.to(device, dtype), inputs.timesteps.to(device)
    out = [unet(latents, timesteps, cond[i:i + 1].expand(k, -1, -1)).sample.float().cpu()
           for i in range(len(inputs.words))]
    return torch.stack(out)


def word_distances(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per word, RMS(other − base) / RMS(base) over its inputs: [words]."""
    dims = tuple(range(1, base.ndim))
    return (other - base).pow(2).mean(dims).sqrt() / base.pow(2).mean(dims).sqrt().clamp_min(1e-12)


@dataclass(frozen=True)
class Drift:
    """A model's behaviour distance to the base: the mean over words and each word's own."""

    mean: float
    per_word: dict[str, float]

    def most_moved(self, count: int = 5) -> list[tuple[str, float]]:
        return sorted(self.per_word.items(), key=lambda kv: (-kv[1], kv[0]))[:count]

    def to_json(self, top: int = 5) -> dict:
        return {"mean": self.mean, "most_moved": [{"word": w, "drift": d} for w, d in self.most_moved(top)],
                "per_word": self.per_word}


def drift_of(inputs: ProbeInputs, base: torch.Tensor, other: torch.Tensor) -> Drift:
    per_word = word_distances(base, other)
    return Drift(float(per_word.mean()), {w: float(d) for w, d in zip(inputs.words, per_word)})


@dataclass(frozen=True)
class BehaviourReport:
    base: str
    words: tuple[str, ...]
    size: tuple[int, int]
    results: list[tuple[str, str, Drift]]  # (name, A1111 short hash, drift from the base)

    def table(self, top: int = 3) -> str:
        width = max(len(name) for name, _, _ in self.results)
        lines = [f"behaviour distance to {self.base} over {len(self.words)} words at {self.size[0]}x{self.size[1]} "
                 f"(0 = same predictions; RMS difference / RMS of the base's)",
                 f"{'model'.ljust(width)}  hash        drift   words that moved most"]
        for name, short, drift in self.results:
            moved = ", ".join(f"{w} {d:.3f}" for w, d in drift.most_moved(top))
            lines.append(f"{name.ljust(width)}  {short:<10}  {drift.mean:.4f}  {moved}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"base": self.base, "words": list(self.words), "size": list(self.size), "timesteps": list(PROBE_TIMESTEPS),
                "models": [{"name": n, "hash": h, **d.to_json()} for n, h, d in self.results]}


def compare_behaviour(base: Path, others: Sequence[Path], words: Sequence[str], size: int | None = None,
                      clip_skip: int | None = None) -> BehaviourReport:
    """Each model's drift from `base` on `words`; models are loaded one at a time (the base's predictions kept)."""
    from ..models.sd_model import load_model
    from .files import short_hash

    model = load_model(base)
    side = size or model.config.resolution
    inputs = ProbeInputs.make(words, (side // 8, side // 8))
    reference = predictions(model, inputs, clip_skip)
    results = []
    for path in others:
        del model
        model = load_model(path)
        results.append((path.name, short_hash(path), drift_of(inputs, reference, predictions(model, inputs,
                                                                                                    clip_skip))))
    return BehaviourReport(base.name, tuple(words), (side, side), results)
