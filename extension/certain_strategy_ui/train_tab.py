"""What the Train tab does, without gradio: the job's arguments from the form, Validate (`train_certain.py --check`),
Start (a job), Stop, and the view of the running or last job that the page polls. `ui.py` wires these to widgets.
"""

from __future__ import annotations

import html
import math
import subprocess
import tempfile
import threading
import time
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
    """train_certain.py's arguments: the TOML (to be written to `config`), the run's output folder, and the fields
    that override it (resolved; each must exist; a state to resume must be one under the output folder)."""
    args = ["--config_file", str(config), "--output_dir", str(run_folder(settings, form.run))]
    for flag, value, what, folder in (("--pretrained_model_name_or_path", form.model, "base model", None),
                                      ("--train_data_dir", form.dataset, "dataset folder", True),
                                      ("--resume", form.resume, "saved state", True)):
        if value.strip():
            args += [flag, str(existing_path(value, what, folder))]
    if form.resume.strip():
        state = Path(args[-1])
        if not (state / "progress.json").is_file() or settings.output.resolve() not in state.parents:
            raise JobError(f"saved state {state}: not a state of a run under {settings.output}; choose one from the "
                           f"list (Refresh the states)")
    return args


def write_config(form: Form, config: Path) -> None:
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(form.toml, encoding="utf-8")


def validate(settings: UiSettings, form: Form, timeout: float = 300) -> str:
    """`train_certain.py --check` on the form: the plan, or the errors with their line in the TOML."""
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    (settings.output / ".check").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.output / ".check") as folder:  # one per check: pages may overlap
        config = Path(folder) / "config.toml"
        try:
            args = job_args(settings, form, config)
        except JobError as e:
            return str(e)
        write_config(form, config)
        try:
            done = subprocess.run([settings.python, str(settings.toolkit / "train_certain.py"), *args, "--check"],
                                  cwd=settings.toolkit, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"check failed: no answer in {timeout:.0f} s (a dataset folder on a slow disk?)"
    verdict = "check passed" if done.returncode == 0 else f"check failed (exit {done.returncode})"
    return f"{verdict}\n\n{done.stdout}{done.stderr}".replace(str(config), "config.toml")


class WebuiModel:
    """The WebUI's loaded model, freed while a training job runs (the Train tab's option) and put back when no job
    runs any more: `free` and `reload` are the WebUI's own calls (A1111: `sd_models.unload_model_weights` and
    `send_model_to_device`). A watcher thread puts it back, so it comes back with no page open, and a reloaded UI
    (a new instance) leaves it to the watcher that is already there."""

    _watcher: threading.Thread | None = None  # one per WebUI process, whatever instance started it
    _lock = threading.Lock()

    def __init__(self, free: Callable[[], None], reload: Callable[[], None], poll_seconds: float = 2.0) -> None:
        self.free, self.reload, self.poll_seconds = free, reload, poll_seconds

    def free_now(self) -> None:
        """Free the model unless a watcher will already put it back (it is freed)."""
        with WebuiModel._lock:
            if WebuiModel._watcher is None or not WebuiModel._watcher.is_alive():
                self.free()

    def reload_after_jobs(self, runner: JobRunner) -> threading.Thread:
        """Put the model back once no job runs (a watcher thread; the one already watching, if any)."""
        with WebuiModel._lock:
            if WebuiModel._watcher is None or not WebuiModel._watcher.is_alive():
                WebuiModel._watcher = threading.Thread(target=self._watch, args=(runner,), daemon=True,
                                                       name="certain-strategy-reload")
                WebuiModel._watcher.start()
            return WebuiModel._watcher

    def _watch(self, runner: JobRunner) -> None:
        while runner.current() is not None:
            time.sleep(self.poll_seconds)
        self.reload()


def start(runner: JobRunner, settings: UiSettings, form: Form, webui_model: WebuiModel | None = None) -> str:
    """Start the training job; with `webui_model`, free the WebUI's model first (put back when no job runs)."""
    problems = settings.check()
    if problems:
        return "\n".join(problems)
    freed = []

    def before() -> None:  # the job is sure to start: a running run's config is never overwritten
        write_config(form, config)
        if webui_model is not None:
            webui_model.free_now()
            freed.append(True)

    try:
        config = run_folder(settings, form.run) / "ui_config.toml"
        job = runner.start(KIND, "train_certain.py", job_args(settings, form, config), progress=True, before=before)
    except JobError as e:
        return str(e)
    finally:
        if freed:
            webui_model.reload_after_jobs(runner)
    note = "; the WebUI's model is freed until no job runs" if freed else ""
    return f"started job {job.id}: {form.run}" + (f", resuming {Path(form.resume).name}" if form.resume else "") + note


def view(runner: JobRunner) -> tuple[str, str, str | None, str, Progress | None]:
    """(status line, loss plot as SVG, latest sample image, log tail, progress) of the running or last training."""
    job = runner.latest(KIND)
    if job is None:
        return "no training job yet", "", None, "", None
    p = runner.progress(job)
    live = p.state == "running"
    eta = f", ETA {p.eta_s / 60:.1f} min" if live and p.eta_s and not math.isnan(p.eta_s) else ""
    rate = f", {p.it_s:.2f} it/s" if live and p.it_s else ""
    loss = f", loss {p.loss:.4f}, lr {p.lr:.2e}" if p.loss is not None else ""
    line = f"{job.kind} job {job.id}: **{p.state}**, step {p.step}/{p.total_steps}, epoch {p.epoch}{loss}{rate}{eta}"
    samples = [s for s in p.samples if Path(s).suffix.lower() == ".png" and Path(s).is_file()]
    return line, loss_svg(p.losses), (samples[-1] if samples else None), "\n".join(p.log_tail), p


def last_form(runner: JobRunner) -> Form | None:
    """The form of the running or last training job, read from its command line and its config."""
    job = runner.latest(KIND)
    config = Path(job.flag("--config_file") or "") if job else None
    if job is None or not config.is_file():
        return None
    return Form(config.read_text(encoding="utf-8"), Path(job.flag("--output_dir") or "").name,
                job.flag("--pretrained_model_name_or_path") or "", job.flag("--train_data_dir") or "")


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
