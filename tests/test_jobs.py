"""The UI's job runner on real subprocesses of train_certain.py with the tiny world model: progress from the JSON
lines, one job at a time, a second runner (a reloaded page, a restarted WebUI) finding the job, stop → a resumable
state → resume to the end, and jobs that crash or are killed shown as failed."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "extension"))
from certain_strategy_ui.jobs import JobError, JobRunner, states_of  # noqa: E402

from library.quickstart import prepare_quickstart  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_args(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("jobs")
    base = prepare_quickstart(root / "qs")
    args = ["--pretrained_model_name_or_path", str(base), "--train_data_dir", str(root / "qs" / "dataset" / "train"),
            "--output_dir", str(root / "out"), "--resolution", "64", "--train_batch_size", "2", "--seed", "1",
            "--save_every_n_steps", "3", "--save_state", "--cache_latents", "--max_data_loader_n_workers", "0",
            "--clip_skip", "2", "--stop_text_encoder_training", "-1", "--learning_rate", "1e-4"]
    yield {"root": root, "args": args, "out": root / "out"}
    for record in root.glob("*/*/job.json"):  # a failed test leaves no job running
        runner = JobRunner(record.parent.parent, ROOT)
        job = next(j for j in runner.jobs() if j.folder == record.parent)
        if runner.is_running(job):
            os.killpg(job.pid, signal.SIGKILL)


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def long_training(train_args, name: str):
    """(runner, job) of a 2000-step training in its own folders, once it has made its first step."""
    runner = JobRunner(train_args["root"] / name, ROOT)
    job = runner.start("train", "train_certain.py", [*train_args["args"], "--max_train_steps", "2000",
                                                     "--output_dir", str(train_args["root"] / f"{name}-out")],
                       progress=True)
    wait_for(lambda: runner.progress(job).step >= 1)
    return runner, job


def test_a_training_job_reports_progress_is_found_again_stops_with_a_state_and_resumes(train_args):
    runner = JobRunner(train_args["root"] / "jobs", ROOT)
    job = runner.start("train", "train_certain.py", [*train_args["args"], "--max_train_steps", "2000"], progress=True)
    wait_for(lambda: runner.progress(job).step >= 4)
    view = runner.progress(job)
    assert view.state == "running" and view.total_steps == 2000 and view.loss is not None and view.it_s > 0
    assert [s for s, _ in view.losses] == list(range(1, view.step + 1))

    with pytest.raises(JobError, match=f"one job at a time: the train job {job.id}"):
        runner.start("train", "train_certain.py", train_args["args"], progress=True)
    page = JobRunner(train_args["root"] / "jobs", ROOT)  # a reloaded page or a restarted WebUI
    found = page.current()
    assert found is not None and found.id == job.id and page.is_running(found)

    page.stop(found)
    assert runner.wait(job, 120)
    view = page.progress(found)
    assert view.state == "stopped" and view.exit_code == 130
    state = states_of(train_args["out"])[0]
    assert state.name.endswith("-interrupted-state") or state.name.endswith("-state")
    saved_step = json.loads((state / "progress.json").read_text())["global_step"]
    assert saved_step == view.step

    resumed = runner.start("train", "train_certain.py", [*train_args["args"], "--resume", str(state),
                                                         "--max_train_steps", str(saved_step + 3)], progress=True)
    assert runner.wait(resumed, 120)
    view = runner.progress(resumed)
    assert view.state == "finished" and view.exit_code == 0 and view.step == saved_step + 3
    assert [s for s, _ in view.losses] == [saved_step + 1, saved_step + 2, saved_step + 3]


def test_a_job_that_fails_is_shown_failed_with_its_last_lines(train_args):
    runner = JobRunner(train_args["root"] / "failing", ROOT)
    args = list(train_args["args"])
    args[args.index("--pretrained_model_name_or_path") + 1] = str(train_args["root"] / "missing.safetensors")
    job = runner.start("train", "train_certain.py", args, progress=True)
    assert runner.wait(job, 60)
    view = JobRunner(train_args["root"] / "failing", ROOT).progress(job)  # read by a runner that did not start it
    assert view.state == "failed" and view.exit_code == 2
    assert any("missing.safetensors" in line for line in view.log_tail)


def test_a_job_killed_without_a_word_is_failed_not_running(train_args):
    runner, job = long_training(train_args, "killed")
    os.killpg(job.pid, signal.SIGKILL)  # the runner too: no exit code is written
    assert runner.wait(job, 30)
    view = JobRunner(train_args["root"] / "killed", ROOT).progress(job)
    assert view.state == "failed" and view.exit_code is None


def test_a_pid_given_to_another_process_is_not_taken_for_the_job(train_args, tmp_path):
    runner = JobRunner(tmp_path, ROOT)
    me = psutil.Process(os.getpid())
    record = {"id": "old", "kind": "train", "argv": [], "folder": str(tmp_path / "old"), "pid": me.pid,
              "created": me.create_time() - 100, "started": "earlier"}  # this pid, but not this process
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "job.json").write_text(json.dumps(record))
    assert runner.current() is None


def test_only_the_toolkits_scripts_run(tmp_path):
    runner = JobRunner(tmp_path, ROOT)
    with pytest.raises(JobError, match="not a script of the toolkit"):
        runner.start("train", "../../bin/sh", ["-c", "echo hi"])


def test_two_starts_at_once_start_one_job(tmp_path):
    """Two pages pressing Start together: the one-job check and the job's record are one step."""
    import threading

    runner, barrier, outcomes = JobRunner(tmp_path, ROOT), threading.Barrier(2), []

    def press_start():
        barrier.wait()
        try:
            outcomes.append(runner.start("similarity", "similarity.py", ["--help"]).id)
        except JobError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=press_start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(runner.jobs()) == 1 and sum(o.startswith("one job at a time") for o in outcomes) == 1
    assert runner.wait(runner.jobs()[0], 60)


def test_a_second_stop_ends_the_job_at_once(train_args):
    runner, job = long_training(train_args, "twice")
    assert runner.stop(job) is False and runner.stop(job) is True  # SIGINT, then SIGTERM
    assert runner.wait(job, 30)
    assert runner.progress(job).exit_code not in (0, None)
