"""Comparable Analysis: the same prompts, seeds and settings across models, as a labelled grid and an HTML page."""

from __future__ import annotations

import argparse
import html
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..atomic import atomic_write_text
from ..errors import UserError
from ..sampling.infotext import ModelIdentity, save_png
from ..sampling.noise import resolve_seed
from ..sampling.request import GenerationRequest
from .prompts_file import load_prompts

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


@dataclass(frozen=True)
class Column:
    """One compared model: its file, name and 10-hex AutoV2 hash (None for a diffusers folder)."""

    path: Path
    name: str
    hash: str | None

    @property
    def label(self) -> str:
        return f"{self.name} [{self.hash or 'no hash'}]"


@dataclass(frozen=True)
class Cell:
    file: str  # relative to the output folder
    infotext: str


@dataclass(frozen=True)
class CompareResult:
    grid: Path
    html: Path
    columns: list[Column]
    cells: list[list[Cell]]  # [prompt][model]


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`WxH` → (W, H); None stays None."""
    if text is None:
        return None
    match = _SIZE.match(text.strip())
    if not match:
        raise UserError(f"--size_override must look like 512x768, got {text!r}")
    return int(match[1]), int(match[2])


def fix_requests(requests: Sequence[GenerationRequest], size: tuple[int, int] | None,
                 steps: int | None) -> list[GenerationRequest]:
    """One image per prompt, random seeds drawn once (every model gets the same), overrides applied."""
    changes: dict[str, int] = {}
    if size is not None:
        changes.update(width=size[0], height=size[1])
    if steps is not None:
        changes["steps"] = steps
    return [replace(r, seed=resolve_seed(r.seed), n_images=1, **changes) for r in requests]


def render_html(columns: Sequence[Column], cells: Sequence[Sequence[Cell]], grid_file: str) -> str:
    """index.html: the models with their hashes, the grid, then each image with its infotext."""
    e = html.escape
    head = "".join(f"<th>{e(c.name)}<br><code>{e(c.hash or 'no hash')}</code></th>" for c in columns)
    rows = []
    for n, row in enumerate(cells, 1):
        tds = "".join(f'<td><a href="{e(c.file)}"><img src="{e(c.file)}" alt="{e(c.file)}"></a>'
                      f"<pre>{e(c.infotext)}</pre></td>" for c in row)
        rows.append(f"<tr><th>{n}</th>{tds}</tr>")
    models = "".join(f"<li>{e(c.name)}: <code>{e(c.hash or 'no hash')}</code> ({e(str(c.path))})</li>"
                     for c in columns)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Comparable Analysis</title>"
            "<style>pre{white-space:pre-wrap;max-width:40em}td{vertical-align:top}</style></head><body>\n"
            f"<h1>Comparable Analysis</h1>\n<ul>{models}</ul>\n<p><img src=\"{e(grid_file)}\" alt=\"grid\"></p>\n"
            f"<table><tr><th>#</th>{head}</tr>\n" + "\n".join(rows) + "\n</table>\n</body></html>\n")


def run_compare(args: argparse.Namespace) -> CompareResult:
    """Generate every prompt with every model into `<outdir>/<NN>-<model>/`, then grid.png and index.html."""
    from ..sampling.generate import generate
    from ..sampling.grid import make_grid
    from .txt2img import open_model, pick_device

    requests = fix_requests(load_prompts(args.prompts), parse_size(args.size_override), args.steps_override)
    for path in args.models:
        if not Path(path).exists():
            raise UserError(f"model not found: {path}")
    outdir, device = Path(args.outdir), pick_device(args.device)
    columns, images, cells = [], [[None] * len(args.models) for _ in requests], [[None] * len(args.models)
                                                                                 for _ in requests]
    for col, path in enumerate(args.models):
        identity = ModelIdentity.of_file(path)
        column = Column(Path(path), identity.name or Path(path).name, identity.hash)
        columns.append(column)
        model = open_model(path, args.vae)
        results = generate(model, requests, device=device, batch_size=args.batch_size, progress=True,
                           identity=identity)
        del model
        for row, result in enumerate(results):
            file = f"{col:02d}-{column.name}/{row:02d}-{result.seed}.png"
            save_png(result.image, outdir / file, result.infotext)
            images[row][col], cells[row][col] = result.image, Cell(file, result.infotext)
    labels = [f"{c.label} #{row + 1}" for row in range(len(requests)) for c in columns]
    grid = make_grid([im for row in images for im in row], len(requests), len(columns), labels)
    summary = "Comparable Analysis: " + ", ".join(c.label for c in columns)
    grid_path = save_png(grid, outdir / "grid.png", summary)
    html_path = outdir / "index.html"
    atomic_write_text(html_path, render_html(columns, cells, "grid.png"))
    return CompareResult(grid_path, html_path, columns, cells)
