"""The job runner: the toolkit's scripts as subprocesses, one at a time, that a page can lose and find again.

A job is `python <script> <args>` started in its own process group (session) under `run_job.py`, which records its
exit code, with its output in `log.txt` and,
for training, its progress in `progress.jsonl` (the scripts' JSON-lines stream: nothing is read from tqdm), all in
`<jobs folder>/<id>/` with `job.json`, which names the process by pid *and* creation time. So a reloaded page, a
second browser tab or a restarted WebUI finds the running job again, and a pid the system has given to another
process is never taken for it. Stop sends SIGINT, which the trainer answers by saving a resumable state; a job whose
process is gone without the trainer's `end` event, or with a non-zero exit, is shown as failed with its last log
lines, never as running forever. This module imports nothing of the toolkit: the WebUI never loads training code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

JOB_FILE, LOG_FILE, PROGRESS_FILE, EXIT_FILE = "job.json", "log.txt", "progress.jsonl", "exit_code"


class JobError(Exception):
    """What the UI shows instead of starting or stopping a job (one job at a time, a missing script, ...)."""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str  # "train", "regularization images", "similarity", "compare"
    argv: list[str]
    folder: Path
    pid: int
    created: float  # the process's creation time: with the pid, it names the process
    started: str

    @property
    def progress_file(self) -> Path:
        return self.folder / PROGRESS_FILE

    @property
    def log_file(self) -> Path:
        return self.folder / LOG_FILE


@dataclass
class Progress:
    """What the page shows of a job, read from its files."""

    state: str  # "running", "finished", "stopped" (a resumable state was saved), "failed"
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: float | None = None
    lr: float | None = None
    it_s: float | None = None
    eta_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) for the plot
    samples: list[str] = field(default_factory=list)  # sample images, oldest first
    saved: list[str] = field(default_factory=list)  # models and states, oldest first
    log_tail: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class JobRunner:
    """Starts, finds, reads and stops the jobs under `folder`; `python` runs the scripts of `toolkit`."""

    def __init__(self, folder: Path, toolkit: Path, python: str = sys.executable) -> None:
        self.folder, self.toolkit, self.python = Path(folder), Path(toolkit), python
        self._spawned: dict[str, subprocess.Popen] = {}  # this process's children, for their exit codes

    # ---- starting ----------------------------------------------------------------------------------------
    def start(self, kind: str, script: str, args: list[str], progress: bool = False) -> Job:
        """Start `script` (a file of the toolkit) with `args`; `progress`: pass it a JSON-lines progress file."""
        self.check_free()
        path = (self.toolkit / script).resolve()
        if not path.is_file() or self.toolkit.resolve() not in path.parents:
            raise JobError(f"{script}: not a script of the toolkit in {self.toolkit}")
        job_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 1000:03d}{len(self._spawned):02d}"
        folder = self.folder / job_id
        folder.mkdir(parents=True)
        argv = [self.python, str(path), *args] + (["--progress_jsonl", str(folder / PROGRESS_FILE)] if progress else [])
        with open(folder / LOG_FILE, "wb") as log:
            process = subprocess.Popen([self.python, str(Path(__file__).with_name("run_job.py")), str(folder), *argv],
                                       cwd=self.toolkit, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._spawned[job_id] = process
        job = Job(job_id, kind, argv, folder, process.pid, psutil.Process(process.pid).create_time(),
                  time.strftime("%Y-%m-%d %H:%M:%S"))
        _write_json(folder / JOB_FILE, {**asdict(job), "folder": str(folder)})
        return job

    def check_free(self) -> None:
        """Raise JobError while a job runs: one job at a time."""
        running = self.current()
        if running is not None:
            raise JobError(f"one job at a time: the {running.kind} job {running.id} (started {running.started}) is "
                           f"still running; stop it or wait for it to end")

    # ---- finding -----------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job of the folder, newest first."""
        found = []
        for record in sorted(self.folder.glob(f"*/{JOB_FILE}"), reverse=True):
            data = json.loads(record.read_text(encoding="utf-8"))
            found.append(Job(**{**data, "folder": Path(data["folder"])}))
        return found

    def current(self) -> Job | None:
        """The running job, if any (a page that lost it finds it here)."""
        return next((job for job in self.jobs() if self.is_running(job)), None)

    def is_running(self, job: Job) -> bool:
        process = self._spawned.get(job.id)
        if process is not None:
            return process.poll() is None
        try:
            alive = psutil.Process(job.pid)
            return alive.create_time() == job.created and alive.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    # ---- reading -----------------------------------------------------------------------------------------
    def progress(self, job: Job, tail: int = 20) -> Progress:
        events = _events(job.progress_file)
        running = self.is_running(job)
        code = self._exit_code(job)
        ended = next((e for e in reversed(events) if e["event"] == "end"), None)
        if running:
            state = "running"
        elif code not in (None, 0) and not (ended and ended.get("interrupted") and code == 130):
            state = "failed"
        elif ended is not None:
            state = "stopped" if ended.get("interrupted") else "finished"
        else:  # no end event: fine for a script without progress that exited 0, else it died
            state = "finished" if code == 0 and not job.progress_file.exists() else "failed"
        view = Progress(state, exit_code=code, log_tail=_tail(job.log_file, tail))
        for event in events:
            kind = event["event"]
            if kind in ("start", "step"):
                view.total_steps = event.get("total_steps", view.total_steps)
            if kind == "step":
                view.step, view.epoch, view.loss, view.lr = event["step"], event["epoch"], event["loss"], event["lr"]
                view.it_s, view.eta_s = event.get("it_s"), event.get("eta_s")
                view.losses.append((event["step"], event["loss"]))
            elif kind == "sample":
                view.samples.append(str(event.get("path", "")))
            elif kind in ("save", "state"):
                view.saved.append(str(event["path"]))
        return view

    def _exit_code(self, job: Job) -> int | None:
        """The command's exit code (negative: the signal that ended it), or None while it runs or when the job's
        runner was killed before writing it."""
        written = job.folder / EXIT_FILE
        if written.is_file():
            return int(written.read_text(encoding="utf-8"))
        return None

    # ---- stopping ----------------------------------------------------------------------------------------
    def stop(self, job: Job, at_once: bool = False) -> None:
        """SIGINT to the job's process group: the trainer saves a resumable state after the current step and
        exits; `at_once` (a second stop) is SIGTERM, for a job that does not answer."""
        if not self.is_running(job):
            raise JobError(f"job {job.id} is not running")
        try:
            os.killpg(job.pid, signal.SIGTERM if at_once else signal.SIGINT)
        except ProcessLookupError:
            pass

    def wait(self, job: Job, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the job to end; True when it has."""
        deadline = time.monotonic() + timeout
        while self.is_running(job):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


def states_of(output_dir: Path) -> list[Path]:
    """The resumable states a run left in `output_dir` (folders with a progress.json), newest first."""
    found = [p.parent for p in Path(output_dir).glob("*/progress.json")]
    return sorted(found, key=lambda p: (p / "progress.json").stat().st_mtime, reverse=True)


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written
            break
    return events


def _tail(path: Path, count: int) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_bytes()[-64_000:].decode("utf-8", errors="replace").replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip()][-count:]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)
