"""What the Similarity tab does, without gradio: `similarity.py BASE OTHERS --blocks extended --json --plot` as a job
of the toolkit's Python, shown as a table (name, hash, %), a per-block table and the heatmap, and kept by the models'
sha256 so the same comparison is read back instead of computed again (the hashes themselves are kept by path, size
and modification time, as A1111 keeps its checkpoint hashes). The comparison the tab shows is named in
`<output>/.similarity/shown`, so a reloaded page or a second browser tab shows it too."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .fields import existing_path
from .jobs import JobError, JobRunner, write_atomic
from .settings import UiSettings

KIND = "similarity"


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
        write_atomic(cache, json.dumps(known, indent=1))
    return known[key]


def start(runner: JobRunner, settings: UiSettings, base: str, others: list[str]) -> str:
    """Show the comparison of `base` with `others`: read back when these models were compared before, else computed
    by a job. The view shows it."""
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        paths = [existing_path(p, "model", folder=False) for p in [base, *others] if p.strip()]
        if len(paths) < 2:
            raise JobError("choose a base and at least one other model (the first path is the base when no base is "
                           "chosen)")
        root = settings.output / ".similarity"
        key = hashlib.sha256("|".join(file_sha256(p, root / "hashes.json") for p in paths).encode()).hexdigest()[:20]
        folder = root / key
        if not (folder / "result.json").is_file():
            runner.start(KIND, "similarity.py", [*map(str, paths), "--blocks", "extended", "--json",
                                                 str(folder / "result.json"), "--plot", str(folder / "heatmap.png")],
                         before=lambda: folder.mkdir(parents=True, exist_ok=True))
            message = f"comparing {len(paths)} models (a job); the table appears here when it is done"
        else:
            message = "read back: these models were compared before (the same sha256)"
    except JobError as e:
        return str(e)
    write_atomic(root / "shown", key)
    return message


def view(runner: JobRunner, settings: UiSettings) -> tuple[str, str, str, str | None]:
    """(status line, summary table, per-block table, heatmap path) of the comparison the tab shows."""
    shown = settings.output / ".similarity" / "shown"
    if not shown.is_file():
        return "no comparison yet", "", "", None
    folder = shown.parent / shown.read_text(encoding="utf-8").strip()
    result, heatmap = folder / "result.json", folder / "heatmap.png"
    if result.is_file():
        return ("", *tables(json.loads(result.read_text(encoding="utf-8"))),
                str(heatmap) if heatmap.is_file() else None)
    job = next((j for j in runner.jobs() if j.kind == KIND and j.flag("--json") == str(result)), None)
    if job is None:
        return "the comparison's job is gone; press Compare again", "", "", None
    progress = runner.progress(job)
    tail = "\n".join(progress.log_tail[-8:])
    return f"{KIND} job {job.id}: **{progress.state}**" + (f"\n\n```\n{tail}\n```" if tail else ""), "", "", None


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

