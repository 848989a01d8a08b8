"""A `Report` as text (the reference tool's table, per-block and matrix tables), JSON and CSV."""

from __future__ import annotations

import csv
import io

from .compare import Report


def format_table(report: Report, per_block: bool) -> str:
    """The base line, then one line per model: name, A1111 short hash, similarity with 4 decimals."""
    width = max(len(r.model.name) for r in report.results)
    lines = [f"base: {report.base.name} [{report.base.hash}]   blocks: {', '.join(report.blocks)}   "
             f"seed: {report.seed}", "",
             f"{'model':<{width}}  {'hash':<8}  similarity"]
    lines += [f"{r.model.name:<{width}}  {r.model.hash:<8}  {r.similarity.similarity:9.4f}%" for r in report.results]
    if per_block:
        values = [[r.similarity.blocks[b] for r in report.results] for b in report.blocks]
        lines += ["", "per block (%):", _grid(list(report.blocks), [r.model.name for r in report.results], values)]
    return "\n".join(lines)


def format_matrix(report: Report) -> str:
    names = [m.name for m in report.models]
    return "similarity matrix (%), row = base:\n" + _grid(names, names, report.matrix)


def _grid(rows: list[str], columns: list[str], values: list[list[float]]) -> str:
    left = max(len(r) for r in rows)
    cell = max(9, *(len(c) for c in columns))
    head = " " * left + "".join(f"  {c:>{cell}}" for c in columns)
    lines = [f"{r:<{left}}" + "".join(f"  {v:>{cell}.4f}" for v in row) for r, row in zip(rows, values)]
    return "\n".join([head, *lines])


def to_json(report: Report) -> dict:
    data: dict = {
        "base": {"path": str(report.base.path), "hash": report.base.hash},
        "blocks": list(report.blocks),
        "seed": report.seed,
        "results": [{"path": str(r.model.path), "hash": r.model.hash, "similarity": r.similarity.similarity,
                     "blocks": r.similarity.blocks} for r in report.results],
    }
    if report.matrix is not None:
        data["matrix"] = {"models": [str(m.path) for m in report.models], "similarity": report.matrix}
    if report.warnings:
        data["warnings"] = report.warnings
    return data


def to_csv(report: Report) -> str:
    """One row per compared model: path, hash, similarity, then one column per block (all in percent)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["base", "path", "hash", "similarity", *report.blocks])
    for r in report.results:
        writer.writerow([str(report.base.path), str(r.model.path), r.model.hash, f"{r.similarity.similarity:.6f}",
                         *(f"{r.similarity.blocks[b]:.6f}" for b in report.blocks)])
    return out.getvalue()
