"""What the Similarity tab does, without gradio: `similarity.py BASE OTHERS --blocks extended --json --plot` run by
the toolkit's Python, shown as a table (name, hash, %), a per-block table and the heatmap, and kept by the models'
sha256 so the same comparison is read back instead of computed again (the hashes themselves are kept by path, size
and modification time, as A1111 keeps its checkpoint hashes)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from .settings import UiSettings


def file_sha256(path: Path, cache: Path) -> str:
    """The file's sha256, read once per (path, size, modification time)."""
    known = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in known:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=1), encoding="utf-8")
    return known[key]


def compare(settings: UiSettings, base: str, others: list[str], timeout: float = 1800) -> tuple[str, str, str | None]:
    """(summary table, per-block table, heatmap path) in Markdown, or an error message and no heatmap."""
    paths = [Path(p).expanduser().resolve() for p in [base, *others] if p.strip()]
    missing = [str(p) for p in paths if not p.is_file()]
    if len(paths) < 2 or missing:
        return ("choose a base and at least one other model" if not missing else
                "not found: " + ", ".join(missing)), "", None
    root = settings.output / ".similarity"
    key = hashlib.sha256("|".join(file_sha256(p, root / "hashes.json") for p in paths).encode()).hexdigest()[:20]
    folder = root / key
    result, heatmap = folder / "result.json", folder / "heatmap.png"
    if not result.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([settings.python, str(settings.toolkit / "similarity.py"), *map(str, paths),
                               "--blocks", "extended", "--json", str(folder / "result.tmp.json"), "--plot",
                               str(heatmap)], cwd=settings.toolkit, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            return f"similarity.py failed (exit {done.returncode}):\n\n{done.stderr[-3000:]}", "", None
        (folder / "result.tmp.json").replace(result)
    return (*tables(json.loads(result.read_text(encoding="utf-8"))), str(heatmap) if heatmap.is_file() else None)


def tables(data: dict) -> tuple[str, str]:
    """similarity.py's JSON as two Markdown tables: each model against the base, and block by block."""
    summary = [f"base: {Path(data['base']['path']).name} [{data['base']['hash']}]", "",
               "| model | hash | similarity |", "|---|---|---|"]
    summary += [f"| {Path(r['path']).name} | {r['hash']} | {r['similarity']:.4f}% |" for r in data["results"]]
    blocks = data["blocks"]
    per_block = ["| model | " + " | ".join(blocks) + " |", "|---|" + "---|" * len(blocks)]
    per_block += [f"| {Path(r['path']).name} | " + " | ".join(f"{r['blocks'][b]:.2f}" for b in blocks) + " |"
                  for r in data["results"]]
    return "\n".join(summary), "\n".join(per_block)
