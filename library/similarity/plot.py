"""The similarity matrix as a labelled heatmap PNG, with an average-linkage dendrogram beside it (3+ models).

Distances are 100 minus the similarity, averaged over both directions (the two differ only where the
models' shapes give different random inputs). Rows and columns follow the dendrogram's leaf order, so
related models sit next to each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_png_figure


def average_linkage(distance: np.ndarray) -> list[tuple[int, int, float]]:
    """UPGMA merges (cluster a, cluster b, height): leaves are 0..n-1, merge k makes cluster n+k."""
    clusters = {i: [i] for i in range(len(distance))}
    merges = []
    while len(clusters) > 1:
        ids = sorted(clusters)
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        height, a, b = min((float(distance[np.ix_(clusters[a], clusters[b])].mean()), a, b) for a, b in pairs)
        merges.append((a, b, height))
        clusters[len(distance) + len(merges) - 1] = clusters.pop(a) + clusters.pop(b)
    return merges


def write_heatmap(path: Path, names: list[str], matrix: list[list[float]]) -> None:
    plt = pyplot()
    values = np.asarray(matrix, dtype=float)
    n = len(names)
    merges = average_linkage(100.0 - (values + values.T) / 2) if n >= 3 else []
    order = _leaf_order(merges, n)
    values = values[np.ix_(order, order)]
    size = 2.0 + 0.9 * n
    fig = plt.figure(figsize=(size + (2.5 if merges else 0), size))  # square cells; the dendrogram adds width
    grid = fig.add_gridspec(1, 2, width_ratios=[2.5, size] if merges else [0.001, size], wspace=0.02)
    heat = fig.add_subplot(grid[1])
    heat.imshow(values, cmap="viridis", vmin=min(values.min(), 99.99), vmax=100, aspect="auto")
    heat.set_xticks(range(n), [names[i] for i in order], rotation=45, ha="right")
    heat.set_yticks(range(n), [names[i] for i in order])
    heat.yaxis.tick_right()
    for i in range(n):
        for j in range(n):
            heat.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if values[i, j] < (values.min() + 100) / 2 else "black")
    heat.set_title("similarity (%), row model is the base")
    if merges:
        _draw_dendrogram(fig.add_subplot(grid[0], sharey=heat), merges, order)
    save_png_figure(fig, path, bbox_inches="tight")


def _leaf_order(merges: list[tuple[int, int, float]], n: int) -> list[int]:
    if not merges:
        return list(range(n))
    members = {i: [i] for i in range(n)}
    for k, (a, b, _) in enumerate(merges):
        members[n + k] = members[a] + members[b]
    return members[n + len(merges) - 1]


def _draw_dendrogram(ax, merges: list[tuple[int, int, float]], order: list[int]) -> None:
    """Root on the left, leaves on the right at the heatmap's rows; x is the merge distance (100 - %)."""
    n = len(order)
    y = {leaf: float(row) for row, leaf in enumerate(order)}
    x = {leaf: 0.0 for leaf in order}
    for k, (a, b, height) in enumerate(merges):
        ax.plot([x[a], height, height, x[b]], [y[a], y[a], y[b], y[b]], color="black", linewidth=1)
        x[n + k], y[n + k] = height, (y[a] + y[b]) / 2
    ax.invert_xaxis()
    ax.set_xlabel("distance (100 - %)")
    ax.tick_params(left=False, labelleft=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
