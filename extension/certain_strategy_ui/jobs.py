"""The job runner: the toolkit's scripts as subprocesses, one at a time, that a page can lose and find again.

A job is `python <script> <args>` started in its own process group (session) under `run_job.py`, which records its
exit code, with its output in `log.txt` and, for training, its progress in `progress.jsonl` (the trainer's JSON-lines
stream: nothing is read from tqdm), all in `<jobs folder>/<id>/` with `job.json`, which names the process by pid
*and* creation time. So a reloaded page, a second browser tab or a restarted WebUI finds the running job again, and
a pid the system has given to another process is never taken for it. Stop sends SIGINT, which the trainer answers by
saving a resumable state (a second Stop sends SIGTERM); a job whose process is gone without the trainer's `end`
event, or with a non-zero exit, is shown as failed with its last log lines, never as running forever. This module imports nothing of the toolkit: the WebUI never loads training code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil

try:
    import fcntl
except ImportError:  # Windows: the thread lock only
    fcntl = None

_THREADS = threading.Lock()

JOB_FILE, LOG_FILE, PROGRESS_FILE, EXIT_FILE = "job.json", "log.txt", "progress.jsonl", "exit_code"
STOP_FILE = "stop_requested"  # written by Stop: a job without progress events that then exits non-zero was stopped


class JobError(Exception):
    """What the UI shows instead of starting or stopping a job (one job at a time, a missing script, ...)."""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str  # the tab that started it: "train", "regularization images", "similarity", "compare"
    argv: list[str]
    folder: Path
    pid: int
    created: float  # the process's creation time: with the pid, it names the process
    started: str

    @property
    def has_progress(self) -> bool:
        """Whether the script reports progress events (the trainer), so its end is known from them."""
        return self.flag("--progress_jsonl") is not None

    def flag(self, name: str) -> str | None:
        """The value the job's command line gives to flag `name` (None when it is not there)."""
        return next((value for flag, value in zip(self.argv, self.argv[1:]) if flag == name), None)

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
    def start(self, kind: str, script: str, args: list[str], progress: bool = False,
              before: Callable[[], None] | None = None) -> Job:
        """Start `script` (a file of the toolkit) with `args`; `progress`: pass it a JSON-lines progress file;
        `before`: work to do once the job is sure to start (the one-job rule holds), such as writing its config."""
        path = (self.toolkit / script).resolve()
        if not path.is_file() or self.toolkit.resolve() not in path.parents:
            raise JobError(f"{script}: not a script of the toolkit in {self.toolkit}")
        with self._starting():  # two pages pressing Start at once: one job starts, the other hears why not
            self.check_free()
            if before is not None:
                before()
            folder = self._new_folder()
            argv = [self.python, str(path), *args] + (["--progress_jsonl", str(folder / PROGRESS_FILE)]
                                                      if progress else [])
            with open(folder / LOG_FILE, "wb") as log:
                process = subprocess.Popen([self.python, str(Path(__file__).with_name("run_job.py")), str(folder),
                                            *argv], cwd=self.toolkit, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._spawned[folder.name] = process
            job = Job(folder.name, kind, argv, folder, process.pid, psutil.Process(process.pid).create_time(),
                      time.strftime("%Y-%m-%d %H:%M:%S"))
            _write_json(folder / JOB_FILE, {**asdict(job), "folder": str(folder)})
        return job

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """Held from the one-job check to the job's record: a lock for this process's threads and a file lock for
        the other processes (a second WebUI on the same output folder)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _THREADS, open(self.folder / ".lock", "w") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _new_folder(self) -> Path:
        """A fresh job folder named by the time to the millisecond, so names sort in the order jobs started."""
        while True:
            now = time.time()
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
            folder = self.folder / f"{stamp}-{int(now * 1000) % 1000:03d}"
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                time.sleep(0.002)

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

    def latest(self, kind: str) -> Job | None:
        """The running job if it is of `kind`, else the newest job of `kind` (what that kind's tab shows)."""
        running = self.current()
        if running is not None and running.kind == kind:
            return running
        return next((job for job in self.jobs() if job.kind == kind), None)

    def is_running(self, job: Job) -> bool:
        process = self._spawned.get(job.id)
        if process is not None:
            return process.poll() is None
        try:
            alive = psutil.Process(job.pid)  # the same process: the same start (to a second; the clock may be set)
            return abs(alive.create_time() - job.created) < 1 and alive.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    # ---- reading -----------------------------------------------------------------------------------------
    def progress(self, job: Job, tail: int = 20) -> Progress:
        running = self.is_running(job)  # before the events: a job that ends meanwhile has written its last one
        code = _exit_code(job)
        events = _events(job.progress_file)
        ended = next((e for e in reversed(events) if e["event"] == "end"), None)
        stopped = (job.folder / STOP_FILE).exists()
        if running:
            state = "running"
        elif ended is not None and code in (None, 0, 130) and (code != 130 or ended.get("interrupted")):
            state = "stopped" if ended.get("interrupted") else "finished"
        elif code == 0 and not job.has_progress:  # a script without progress events that ended well
            state = "finished"
        elif code is not None and code != 0 and stopped and not job.has_progress:
            state = "stopped"  # Stop ended a script without progress events (what it wrote is kept and resumes)
        else:  # an error exit, or gone without a word
            state = "failed"
        view = Progress(state, exit_code=code, log_tail=_tail(job.log_file, tail))
        for event in events:
            kind = event["event"]
            if kind in ("start", "step"):
                view.total_steps = event.get("total_steps", view.total_steps)
            if kind == "step":
                view.step, view.epoch, view.loss, view.lr = event["step"], event["epoch"], event["loss"], event["lr"]
                view.it_s, view.eta_s = event.get("it_s"), event.get("eta_s")
                view.losses.append((event["step"], event["loss"]))
            elif kind == "sample":  # the trainer's sample event: the step's images and their grid
                view.samples.append(str(event.get("grid") or (event.get("files") or [""])[-1]))
            elif kind in ("save", "state"):
                view.saved.append(str(event["path"]))
        return view

    # ---- stopping ----------------------------------------------------------------------------------------
    def stop(self, job: Job) -> bool:
        """SIGINT to the job's process group: the trainer saves a resumable state after the current step and exits.
        A second stop of the same job sends SIGTERM, which ends it at once. True when it was the second."""
        if not self.is_running(job):
            raise JobError(f"job {job.id} is not running")
        again = (job.folder / STOP_FILE).exists()
        (job.folder / STOP_FILE).touch()
        try:
            os.killpg(job.pid, signal.SIGTERM if again else signal.SIGINT)
        except ProcessLookupError:
            pass
        return again

    def stop_current(self, kind: str) -> str:
        """A tab's Stop: stop the running job if that tab started it; what happens, in words."""
        job = self.current()
        if job is None:
            return "no job is running"
        if job.kind != kind:
            return f"the running job is the {job.kind} job {job.id}: stop it from its own tab"
        try:
            again = self.stop(job)
        except JobError:
            return f"the {kind} job {job.id} has ended"
        if again:
            return f"stopping the {kind} job {job.id} at once (a second Stop)"
        return (f"stopping the {kind} job {job.id}: it keeps what it has done (training saves a resumable state after "
                f"its current step) and ends; press Stop again to end it at once")

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


def _exit_code(job: Job) -> int | None:
    """The command's exit code (negative: the signal that ended it), or None while it runs or when the job's runner
    was killed before writing it."""
    written = job.folder / EXIT_FILE
    return int(written.read_text(encoding="utf-8")) if written.is_file() else None


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
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Write `text` so that a reader (another page, another WebUI) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
