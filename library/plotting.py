"""Figures written as PNG files: matplotlib on its file-only backend, saved atomically.

Training runs and command-line tools have no display, and a plot must never be left half-written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported on first use: most runs draw nothing)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png_figure(fig: Any, path: str | Path, **savefig: Any) -> None:
    """Write `fig` to `path` as PNG (100 dpi unless given) through a temp file, and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **{"dpi": 100, **savefig})
    pyplot().close(fig)
