"""What the Regularization images tab does, without gradio: `gen_reg_images.py` in its word-frequency or class mode
as a job, apart from training, into `<output>/reg_images/<set>/` (a kohya folder name such as `1_girl` works as it
is), and the view the page polls: how many images the set holds, the newest of them and the log tail. Both modes
are resumable, so Stop keeps what is done and Start with the same set and seed goes on from there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fields import existing_path, folder_name
from .jobs import JobError, JobRunner
from .settings import UiSettings

KIND = "regularization images"
MODES = ("word frequency", "class")
SAMPLERS = ("Euler a", "Euler", "DPM++ 2M", "DDIM")
GALLERY = 24  # the newest images the page shows


@dataclass(frozen=True)
class ImagesForm:
    """The tab's fields."""

    model: str  # the checkpoint that draws the set
    mode: str  # one of MODES
    source: str  # word frequency: a word list file or dataset folder; class: the class prompt
    count: int  # images the set should hold
    name: str  # the set's folder under <output>/reg_images/
    negative: str = ""
    steps: int = 28
    sampler: str = "Euler a"
    cfg_scale: float = 7.0
    seed: int = 1  # fixed by default: a set resumes only with the seed it was started with
    width: int = 512
    height: int = 512


def set_folder(settings: UiSettings, name: str) -> Path:
    return settings.output / "reg_images" / folder_name(name, "set name")


def job_args(settings: UiSettings, form: ImagesForm) -> list[str]:
    """gen_reg_images.py's arguments for the form (paths resolved and checked)."""
    if form.mode not in MODES:
        raise JobError(f"mode {form.mode!r}: choose one of {', '.join(MODES)}")
    if int(form.count) < 1:
        raise JobError(f"number of images {form.count}: at least 1")
    if form.mode == "word frequency":
        source = ["--wordfreq", str(existing_path(form.source, "word list or dataset folder"))]
    elif form.source.strip():
        source = [f"--class_prompt={form.source.strip()}"]  # one item: a prompt may start with '-'
    else:
        raise JobError("class prompt: empty; give the class, e.g. 1girl")
    args = ["txt2img", "--model", str(existing_path(form.model, "model")), *source, "--count", str(int(form.count)),
            "--outdir", str(set_folder(settings, form.name)), "--steps", str(int(form.steps)), "--sampler",
            form.sampler, "--cfg_scale", str(float(form.cfg_scale)), "--seed", str(int(form.seed)), "--width",
            str(int(form.width)), "--height", str(int(form.height))]
    return args + ([f"--negative_prompt={form.negative}"] if form.negative.strip() else [])


def start(runner: JobRunner, settings: UiSettings, form: ImagesForm) -> str:
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        job = runner.start(KIND, "gen_reg_images.py", job_args(settings, form))
    except JobError as e:
        return str(e)
    except (TypeError, ValueError):
        return "number of images, steps, CFG scale, seed, width and height: give a number in each"
    return f"started job {job.id}: {form.count} {form.mode} images into {set_folder(settings, form.name)}"


def view(runner: JobRunner) -> tuple[str, list[str], str]:
    """(status line, the newest images for the gallery, log tail) of the running or last set's job."""
    job = runner.latest(KIND)
    if job is None:
        return "no regularization images job yet", [], ""
    progress, folder = runner.progress(job), Path(job.flag("--outdir") or job.folder)
    images = sorted(folder.glob("*.png"), key=_changed)
    line = (f"{KIND} job {job.id}: **{progress.state}**, {len(images)} of {job.flag('--count')} images in "
            f"`{folder}`")
    return line, [str(p) for p in images[-GALLERY:]][::-1], "\n".join(progress.log_tail)


def _changed(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # replaced meanwhile
        return 0.0
