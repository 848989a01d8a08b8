"""What the Train tab does, without gradio: the job's arguments from the form, Validate (`train_certain.py --check`),
Start (a job), Stop, and the view of the running or last job that the page polls. `ui.py` wires these to widgets.
"""

from __future__ import annotations

import html
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .fields import existing_path, folder_name
from .jobs import JobError, JobRunner, Progress, states_of
from .settings import UiSettings

KIND = "train"


@dataclass(frozen=True)
class Form:
    """The Train tab's fields."""

    toml: str  # the args TOML as the user edited it (a forum config pasted as it is works)
    run: str  # the run's folder name under the output folder
    model: str = ""  # a checkpoint path; empty: the TOML's
    dataset: str = ""  # a train_data_dir; empty: the TOML's
    resume: str = ""  # a saved state of the run; empty: start afresh


def run_folder(settings: UiSettings, run: str) -> Path:
    return settings.output / folder_name(run, "run name")


def job_args(settings: UiSettings, form: Form, config: Path) -> list[str]:
    """train_certain.py's arguments: the TOML as written to `config`, the run's output folder, and the fields
    that override it (resolved; each must exist)."""
    args = ["--config_file", str(config), "--output_dir", str(run_folder(settings, form.run))]
    for flag, value, what, folder in (("--pretrained_model_name_or_path", form.model, "base model", None),
                                      ("--train_data_dir", form.dataset, "dataset folder", True),
                                      ("--resume", form.resume, "saved state", True)):
        if value.strip():
            args += [flag, str(existing_path(value, what, folder))]
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(form.toml, encoding="utf-8")
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


class WebuiModel:
    """The WebUI's loaded model, freed while a training job runs (the Train tab's option) and reloaded when it ends:
    `free` and `reload` are the WebUI's own calls (A1111: `sd_models.unload_model_weights` and
    `send_model_to_device`); the page's polling calls `reload_when_idle`."""

    def __init__(self, free: Callable[[], None], reload: Callable[[], None]) -> None:
        self.free, self.reload, self.freed = free, reload, False

    def free_for_training(self) -> None:
        self.free()
        self.freed = True

    def reload_when_idle(self, runner: JobRunner) -> bool:
        """Reload the model once no job runs; True when it did."""
        if not self.freed or runner.current() is not None:
            return False
        self.freed = False
        self.reload()
        return True


def start(runner: JobRunner, settings: UiSettings, form: Form, webui_model: WebuiModel | None = None) -> str:
    """Start the training job; with `webui_model`, free the WebUI's model first (reloaded when the job ends)."""
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    try:
        folder = run_folder(settings, form.run)
        runner.check_free()  # before the config is written: a running run's own must not be overwritten
        args = job_args(settings, form, folder / "ui_config.toml")
        if webui_model is not None:
            webui_model.free_for_training()
        job = runner.start(KIND, "train_certain.py", args, progress=True)
    except JobError as e:
        return str(e)
    freed = "; the WebUI's model is freed until it ends" if webui_model is not None else ""
    return f"started job {job.id}: {form.run}" + (f", resuming {Path(form.resume).name}" if form.resume else "") + freed


def view(runner: JobRunner) -> tuple[str, str, str | None, str, Progress | None]:
    """(status line, loss plot as SVG, latest sample image, log tail, progress) of the running or last training."""
    job = runner.latest(KIND)
    if job is None:
        return "no training job yet", "", None, "", None
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
