"""Watching the regularization: the realized word histogram against its target, and what generating costs.

Every `every_n_steps` steps (and at the end) a `regularization` progress event carries the chi-square of the words
drawn so far against the target distribution and, when the stream generates (self_wordfreq), this process's
images per second and the share of step time spent generating; the TensorBoard callback plots its `scalars`. The histogram itself is written as JSON and as a bar chart to
`<output_dir>/regularization/` at each epoch end and at the end, for people who would rather look than read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..plotting import pyplot, save_png_figure
from ..plugins import Callback, LoopContext, StepResult
from .sampler import chi_square
from .wordfreq import WordList


def fit_figures(counts: Mapping[str, int], word_list: WordList | None, alpha: float) -> dict[str, float]:
    """Draws and distinct words, plus the chi-square statistic, degrees of freedom and p-value of `counts` against
    the list's target (when there is a list and enough draws for the test)."""
    figures: dict[str, float] = {"drawn": float(sum(counts.values())), "distinct_words": float(len(counts))}
    if word_list is not None:
        try:
            statistic, dof, p = chi_square(counts, word_list, alpha=alpha)
        except ValueError:  # too few draws yet for two bins of expected count >= 5
            return figures
        figures.update(chi_square=statistic, chi_square_dof=float(dof), chi_square_p=p)
    return figures


def histogram_rows(counts: Mapping[str, int], expected: Mapping[str, float], top: int) -> list[dict[str, Any]]:
    """The `top` words by target probability, each with realized and expected counts."""
    n = sum(counts.values())
    words = sorted(expected, key=lambda w: (-expected[w], w))[:top]
    return [{"word": w, "drawn": counts.get(w, 0), "expected": round(expected[w] * n, 3),
             "target_probability": expected[w]} for w in words]


def plot_histogram(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.35 * len(rows)), 4.5))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["drawn"] for r in rows], width=0.4, label="drawn")
    ax.bar([i + 0.2 for i in x], [r["expected"] for r in rows], width=0.4, label="expected")
    ax.set_xticks(list(x), [r["word"] for r in rows], rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    save_png_figure(fig, path)


@dataclass
class RegularizationMonitor(Callback):
    """Reports on a word stream (`counts`, `images_made`, `generation_seconds`) against `expected`."""

    stream: Any  # SelfGeneratedStream or PregeneratedStream
    expected: Mapping[str, float]
    word_list: WordList | None
    alpha: float
    folder: Path
    every_n_steps: int = 50
    top: int = 40
    step_seconds: float = 0.0  # this process, generation included

    def on_step_end(self, ctx: LoopContext, result: StepResult) -> None:
        self.step_seconds += result.seconds
        if result.step % self.every_n_steps == 0:
            self.report(ctx, result.step)

    def on_epoch_end(self, ctx: LoopContext) -> None:
        if ctx.is_main:
            self.write_histogram(ctx.global_step)

    def on_train_end(self, ctx: LoopContext, interrupted: bool) -> None:
        self.report(ctx, ctx.global_step)
        if ctx.is_main:
            self.write_histogram(ctx.global_step)

    def figures(self) -> dict[str, float]:
        figures = fit_figures(self.stream.counts, self.word_list, self.alpha)
        generating = self.stream.generation_seconds
        if generating:
            figures["images_per_second"] = self.stream.generated_here / generating
        if generating and self.step_seconds:  # step times include the streams' generation
            figures["generation_share"] = generating / self.step_seconds
        return figures

    def report(self, ctx: LoopContext, step: int) -> None:
        ctx.log_event("regularization", step=step, scalars={k: round(v, 6) for k, v in self.figures().items()})

    def write_histogram(self, step: int) -> None:
        if not self.stream.counts:
            return
        rows = histogram_rows(self.stream.counts, self.expected, len(self.expected))
        figures = self.figures()
        record = {"step": step, **figures, "words": rows}
        atomic_write_text(self.folder / "word_histogram.json", json.dumps(record, ensure_ascii=False, indent=1))
        p = f", chi-square p = {figures['chi_square_p']:.3g}" if "chi_square_p" in figures else ""
        plot_histogram(rows[:self.top], f"regularization words at step {step}: {int(figures['drawn'])} drawn{p}",
                       self.folder / "word_histogram.png")

    def state_dict(self) -> dict[str, Any]:
        return {"step_seconds": self.step_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_seconds = float(state.get("step_seconds", 0.0))
