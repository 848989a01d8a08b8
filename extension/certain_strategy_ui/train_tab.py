"""What the Train tab does, without gradio: the job's arguments from the form, Validate (`train_certain.py --check`),
Start (a job), Stop, and the view of the running or last job that the page polls. `ui.py` wires these to widgets.
"""

from __future__ import annotations

import html
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .jobs import JobError, JobRunner, Progress, states_of
from .settings import UiSettings

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Form:
    """The Train tab's fields."""

    toml: str  # the args TOML as the user edited it (a forum config pasted as it is works)
    run: str  # the run's folder name under the output folder
    model: str = ""  # a checkpoint path; empty: the TOML's
    dataset: str = ""  # a train_data_dir; empty: the TOML's
    resume: str = ""  # a saved state of the run; empty: start afresh


def run_folder(settings: UiSettings, run: str) -> Path:
    if not RUN_NAME.match(run or ""):
        raise JobError(f"run name {run!r}: use letters, digits, '.', '_' or '-' (up to 64), e.g. my-anime-ft")
    return settings.output / run


def job_args(settings: UiSettings, form: Form, config: Path) -> list[str]:
    """train_certain.py's arguments: the TOML as written to `config`, the run's output folder, and the fields
    that override it."""
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(form.toml, encoding="utf-8")
    args = ["--config_file", str(config), "--output_dir", str(run_folder(settings, form.run))]
    for flag, value in (("--pretrained_model_name_or_path", form.model), ("--train_data_dir", form.dataset),
                        ("--resume", form.resume)):
        if value.strip():
            args += [flag, str(Path(value.strip()).expanduser().resolve())]
    return args


def validate(settings: UiSettings, form: Form, timeout: float = 300) -> str:
    """`train_certain.py --check` on the form: the plan, or the errors with their line in the TOML."""
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        config = settings.output / ".check" / "config.toml"
        args = job_args(settings, form, config)
    except JobError as e:
        return str(e)
    done = subprocess.run([settings.python, str(settings.toolkit / "train_certain.py"), *args, "--check"],
                          cwd=settings.toolkit, capture_output=True, text=True, timeout=timeout)
    verdict = "check passed" if done.returncode == 0 else f"check failed (exit {done.returncode})"
    return f"{verdict}\n\n{done.stdout}{done.stderr}".replace(str(config), "config.toml")


def start(runner: JobRunner, settings: UiSettings, form: Form) -> str:
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        folder = run_folder(settings, form.run)
        runner.check_free()  # before the config is written: a running run's own must not be overwritten
        job = runner.start("train", "train_certain.py", job_args(settings, form, folder / "ui_config.toml"),
                           progress=True)
    except JobError as e:
        return str(e)
    return f"started job {job.id}: {form.run}" + (f", resuming {Path(form.resume).name}" if form.resume else "")


def stop(runner: JobRunner) -> str:
    job = runner.current()
    if job is None:
        return "no job is running"
    runner.stop(job)
    return f"stopping job {job.id} after its current step; a resumable state is saved"


def view(runner: JobRunner) -> tuple[str, str, str | None, str, Progress | None]:
    """(status line, loss plot as SVG, latest sample image, log tail, progress) of the running or last job."""
    jobs = runner.jobs()
    if not jobs:
        return "no job yet", "", None, "", None
    job = runner.current() or jobs[0]
    p = runner.progress(job)
    eta = f", ETA {p.eta_s / 60:.1f} min" if p.eta_s and p.eta_s == p.eta_s else ""
    rate = f", {p.it_s:.2f} it/s" if p.it_s else ""
    loss = f", loss {p.loss:.4f}, lr {p.lr:.2e}" if p.loss is not None else ""
    line = f"{job.kind} job {job.id}: **{p.state}**, step {p.step}/{p.total_steps}, epoch {p.epoch}{loss}{rate}{eta}"
    samples = [s for s in p.samples if Path(s).suffix.lower() == ".png" and Path(s).is_file()]
    return line, loss_svg(p.losses), (samples[-1] if samples else None), "\n".join(p.log_tail), p


def resume_choices(settings: UiSettings, run: str) -> list[str]:
    """The run's saved states, newest first (the Resume list)."""
    try:
        return [str(state) for state in states_of(run_folder(settings, run))]
    except JobError:
        return []


def loss_svg(losses: list[tuple[int, float]], width: int = 480, height: int = 160) -> str:
    """The loss curve as inline SVG: no plotting library in the WebUI's process, the same in every gradio."""
    if len(losses) < 2:
        return "<p>the loss curve appears after two steps</p>"
    steps, values = [s for s, _ in losses], [v for _, v in losses]
    low, high = min(values), max(values)
    span, step_span = (high - low) or 1.0, (steps[-1] - steps[0]) or 1
    points = " ".join(f"{(s - steps[0]) / step_span * (width - 50) + 45:.1f},"
                      f"{height - 20 - (v - low) / span * (height - 30):.1f}" for s, v in losses)
    label = html.escape(f"loss {low:.4f} to {high:.4f}, steps {steps[0]} to {steps[-1]}")
    return (f'<svg class="certain-loss" width="{width}" height="{height}" role="img" aria-label="{label}">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>'
            f'<text x="45" y="{height - 4}" font-size="11" fill="currentColor">{label}</text></svg>')
