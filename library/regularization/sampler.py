"""Drawing words in proportion to their frequency, resumably, and checking that the draws match the target.

The sampler uses Python's `random.Random` (Mersenne Twister) seeded with an integer: its state is a plain tuple
that fits in a JSON or torch checkpoint, and it does not depend on numpy or torch versions, so a resumed run draws
the same words on any machine. With alpha = 1 (the method's ratio) or 0 (uniform) the weights are integers and a
draw is exact: `randrange(total)` picks a uniform integer and bisection over the cumulative counts maps it to a
word, so P(word) = count / total with no rounding. Other alphas use float weights count**alpha and `random()`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from library.errors import UserError
from library.regularization.wordfreq import WordList

_STATE_VERSION = 1


def _weights(word_list: WordList, alpha: float) -> tuple[int, ...] | tuple[float, ...]:
    if alpha == 1:
        return word_list.counts
    if alpha == 0:
        return tuple(1 if c > 0 else 0 for c in word_list.counts)
    return tuple(float(c) ** alpha if c > 0 else 0.0 for c in word_list.counts)


def target_probabilities(word_list: WordList, alpha: float = 1.0) -> dict[str, float]:
    """P(word) ∝ count**alpha: 1 is the method's ratio, 0 uniform, in between flattens the head of the list."""
    if not math.isfinite(alpha) or alpha < 0:
        raise UserError(f"alpha must be a finite number >= 0 (1 = proportional to counts, 0 = uniform), got {alpha}")
    weights = _weights(word_list, alpha)
    total = sum(weights)
    if not total:
        raise UserError(f"{word_list.source}: every count is 0, nothing to draw from")
    return {w: x / total for w, x in zip(word_list.words, weights)}


def _fingerprint(word_list: WordList, alpha: float) -> str:
    digest = hashlib.sha256(repr((word_list.words, word_list.counts, float(alpha))).encode("utf-8"))
    return digest.hexdigest()[:16]


@dataclass
class WordSampler:
    """Seeded stream of words drawn with replacement, P(word) ∝ count**alpha. Mutable on purpose: it carries the
    stream position; `state_dict`/`load_state_dict` save and restore it so a resumed run continues the sequence."""

    word_list: WordList
    seed: int
    alpha: float = 1.0
    drawn: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int):
            raise UserError(f"the word sampler seed must be an integer, got {self.seed!r}")
        self._probabilities = target_probabilities(self.word_list, self.alpha)
        self._cumulative = list(itertools.accumulate(_weights(self.word_list, self.alpha)))
        self._total = self._cumulative[-1]
        self._exact = isinstance(self._total, int)
        self._rng = random.Random(self.seed)

    def draw(self, n: int) -> list[str]:
        """The next `n` words of the stream."""
        if n < 0:
            raise ValueError(f"cannot draw {n} words")
        words, cumulative, total = self.word_list.words, self._cumulative, self._total
        if self._exact:
            picks = [bisect.bisect_right(cumulative, self._rng.randrange(total)) for _ in range(n)]
        else:
            picks = [min(bisect.bisect_right(cumulative, self._rng.random() * total), len(words) - 1)
                     for _ in range(n)]
        self.drawn += n
        return [words[i] for i in picks]

    def expected_frequencies(self) -> dict[str, float]:
        """Target probability of each word (sums to 1)."""
        return dict(self._probabilities)

    def state_dict(self) -> dict:
        """Plain lists, ints and strings (JSON-safe): the RNG state, the position, and a fingerprint of the list so
        that restoring against a different list fails loudly instead of drawing a different stream."""
        version, internal, gauss = self._rng.getstate()
        return {"version": _STATE_VERSION, "seed": self.seed, "alpha": float(self.alpha), "drawn": self.drawn,
                "fingerprint": _fingerprint(self.word_list, self.alpha),
                "rng_state": [version, list(internal), gauss]}

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("version") != _STATE_VERSION:
            raise UserError(f"word sampler state has version {state.get('version')!r}, expected {_STATE_VERSION}; "
                            f"it was saved by another release, start the word stream afresh")
        if state.get("fingerprint") != _fingerprint(self.word_list, self.alpha):
            raise UserError(f"the saved word sampler state belongs to a different word list or alpha than "
                            f"{self.word_list.source}; resume with the same list and alpha, or start afresh")
        version, internal, gauss = state["rng_state"]
        self._rng.setstate((version, tuple(internal), gauss))
        self.seed = int(state["seed"])
        self.drawn = int(state["drawn"])


# ---------------------------------------------------------------------------------------------- chi-square


def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): series for x < a + 1, Lentz continued fraction beyond (Numerical Recipes 6.2);
    pure Python so the check needs no scipy."""
    if x <= 0:
        return 1.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(100000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, h * math.exp(log_prefactor))


def chi_square_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof)."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    return _upper_gamma_regularized(dof / 2, statistic / 2)


def chi_square(observed_counts: Mapping[str, int], word_list: WordList, *, alpha: float = 1.0,
               min_expected: float = 5.0) -> tuple[float, int, float]:
    """Pearson goodness of fit of drawn words to the target: (statistic, degrees of freedom, p-value). Words whose
    expected count is below `min_expected` are pooled into one bin (merged into the smallest other bin if still
    too small), as the chi-square approximation needs; a large list drawn a few thousand times has a long tail."""
    probabilities = target_probabilities(word_list, alpha)
    unknown = [w for w, c in observed_counts.items() if c and w not in probabilities]
    if unknown:
        raise ValueError(f"observed words not in the word list: {unknown[:5]}")
    n = sum(observed_counts.values())
    if n <= 0:
        raise ValueError("no observations")
    bins = [(n * p, observed_counts.get(w, 0)) for w, p in probabilities.items() if p > 0]
    big = [b for b in bins if b[0] >= min_expected]
    small = [b for b in bins if b[0] < min_expected]
    if small:
        pooled = (sum(e for e, _ in small), sum(o for _, o in small))
        if pooled[0] < min_expected and big:
            big.sort()
            smallest = big.pop(0)
            pooled = (pooled[0] + smallest[0], pooled[1] + smallest[1])
        big.append(pooled)
    if len(big) < 2:
        raise ValueError("fewer than two bins with enough expected counts; draw more words")
    statistic = sum((o - e) ** 2 / e for e, o in big)
    dof = len(big) - 1
    return statistic, dof, chi_square_sf(statistic, dof)
