"""The run report, rewritten at every save: `report.png` (train and validation loss, drift and similarity by step,
the chosen checkpoint marked) and `report.md` (the checkpoint table and the choice in words), both made from what
checkpoints.json holds, so the WebUI tab and a reader see the same figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..plotting import pyplot, save_png_figure


def write_report(folder: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(folder / "report.md", report_markdown(summary))
    plot_report(summary, folder / "report.png")


def _cell(value: Any, digits: int = 5) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report_markdown(summary: dict[str, Any]) -> str:
    chosen = summary["chosen"]
    lines = ["# Training report", "",
             f"**Chosen checkpoint:** `{chosen['path']}` (step {chosen['step']})" if chosen else
             "**Chosen checkpoint:** none", "", f"Why: {summary['reason']}.", "",
             f"Overfit rule: {summary['rule']['description']}.", "",
             "| checkpoint | step | epoch | train loss | validation loss | drift | similarity % | words that moved most |",
             "|---|---|---|---|---|---|---|---|"]
    for c in summary["checkpoints"]:
        moved = ", ".join(f"{m['word']} {m['drift']:.3f}" for m in c.get("most_moved") or [])
        name = f"**{c['path']}** ✓" if c["chosen"] else c["path"]
        lines.append(f"| {name} | {c['step']} | {c['epoch']} | {_cell(c['train_loss'])} | "
                     f"{_cell(c['validation_loss'])} | {_cell(c['drift'], 4)} | {_cell(c.get('similarity'), 3)} | "
                     f"{moved} |")
    return "\n".join(lines) + "\n"


def plot_report(summary: dict[str, Any], path: Path) -> None:
    checkpoints, evaluations = summary["checkpoints"], summary["evaluations"]
    fig, (loss_ax, drift_ax) = pyplot().subplots(2, 1, figsize=(8, 6.5), sharex=True)
    _line(loss_ax, checkpoints, "train_loss", "train loss (mean since the previous checkpoint)", "o-")
    _line(loss_ax, evaluations, "validation_loss", "validation loss", "s-")
    loss_ax.set_ylabel("loss")
    _line(drift_ax, evaluations, "drift", "drift from the base (behaviour)", "s-")
    drift_ax.set_ylabel("drift")
    if any(c.get("similarity") is not None for c in checkpoints):
        sim_ax = drift_ax.twinx()
        _line(sim_ax, checkpoints, "similarity", "similarity to the base %", "^--", colour="tab:green")
        sim_ax.set_ylabel("similarity %")
        sim_ax.legend(loc="lower right", fontsize=8)
    drift_ax.set_xlabel("step")
    if summary["chosen"]:
        for ax in (loss_ax, drift_ax):
            ax.axvline(summary["chosen"]["step"], color="tab:red", linestyle=":", label="chosen checkpoint")
    if summary["overfitting"]:
        loss_ax.axvline(summary["overfitting"]["began_step"], color="grey", linestyle="--",
                        label="overfitting began")
    for ax in (loss_ax, drift_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    title = f"chosen: {summary['chosen']['path']}" if summary["chosen"] else "no checkpoint chosen"
    loss_ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_png_figure(fig, path)


def _line(ax, rows: list[dict[str, Any]], key: str, label: str, style: str, colour: str | None = None) -> None:
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if points:
        ax.plot(*zip(*points), style, label=label, markersize=4, **({"color": colour} if colour else {}))
