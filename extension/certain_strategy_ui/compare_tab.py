"""What the Compare tab does, without gradio: `gen_reg_images.py compare`, the Comparable Analysis (the same
prompts, seeds and A1111 settings across models) as a job into `<output>/compare/<name>/`, with the method's prompts
and settings (`configs/comparable_analysis.txt`) prefilled and editable, and the view the page polls: the images
so far, then the labelled grid and the page with every image's infotext."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fields import existing_path, folder_name
from .jobs import JobError, JobRunner
from .settings import UiSettings

KIND = "compare"
DEFAULT_PROMPTS = "comparable_analysis.txt"


@dataclass(frozen=True)
class CompareForm:
    """The tab's fields."""

    models: list[str]  # the grid's columns, in order
    prompts: str  # infotext blocks separated by blank lines (the prompt files' format)
    name: str  # the comparison's folder under <output>/compare/
    size: str = ""  # WxH instead of each prompt's size (quick looks)
    steps: str = ""  # steps instead of each prompt's (quick looks)


def prompt_files(settings: UiSettings) -> dict[str, Path]:
    """The toolkit's prompt files by name, the method's Comparable Analysis first."""
    files = sorted((settings.toolkit / "configs").glob("*.txt"), key=lambda p: (p.name != DEFAULT_PROMPTS, p.name))
    return {p.name: p for p in files}


def compare_folder(settings: UiSettings, name: str) -> Path:
    return settings.output / "compare" / folder_name(name, "comparison name")


def start(runner: JobRunner, settings: UiSettings, form: CompareForm) -> str:
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        models = [str(existing_path(m, "model")) for m in form.models if m.strip()]
        if not models:
            raise JobError("choose at least one model (the grid's columns)")
        if not form.prompts.strip():
            raise JobError("prompts: empty; pick a prompt file or write infotext blocks")
        overrides = [f"--size_override={form.size.strip()}"] if form.size.strip() else []
        overrides += ["--steps_override", str(int(form.steps))] if str(form.steps).strip() else []
        folder = compare_folder(settings, form.name)

        def write_prompts() -> None:  # once the job is sure to start: a running comparison's own must stay
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "prompts.txt").write_text(form.prompts, encoding="utf-8")

        job = runner.start(KIND, "gen_reg_images.py", ["compare", "--models", *models, "--prompts",
                                                        str(folder / "prompts.txt"), "--outdir", str(folder),
                                                        *overrides], before=write_prompts)
    except JobError as e:
        return str(e)
    except ValueError:
        return f"steps {form.steps!r}: give a whole number, or leave it empty for each prompt's own"
    return f"started job {job.id}: {len(models)} model(s) into {folder}"


def view(runner: JobRunner) -> tuple[str, str | None, str]:
    """(status line, the grid once written, log tail) of the running or last comparison."""
    job = runner.latest(KIND)
    if job is None:
        return "no comparison yet", None, ""
    progress, folder = runner.progress(job), Path(job.flag("--outdir") or job.folder)
    images = len([p for p in folder.glob("*/*.png") if p.stat().st_mtime >= job.created - 1])  # this job's
    grid = folder / "grid.png"
    done = grid.is_file() and progress.state == "finished"
    line = (f"{KIND} job {job.id}: **{progress.state}**, {images} image(s)" +
            (" so far" if progress.state == "running" else "") +
            (f"; the grid and `{folder / 'index.html'}` (every image with its infotext)" if done else ""))
    return line, (str(grid) if done else None), "\n".join(progress.log_tail)
