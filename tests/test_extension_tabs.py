"""The Regularization images and Compare tabs on real jobs of gen_reg_images.py with the tiny world model, the
fields' checks, Stop on a script without progress events, and the option that frees the WebUI's model."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "extension"))
from certain_strategy_ui import compare_tab, images_tab, train_tab  # noqa: E402
from certain_strategy_ui.fields import existing_path, folder_name  # noqa: E402
from certain_strategy_ui.jobs import JobError, JobRunner  # noqa: E402
from certain_strategy_ui.settings import UiSettings  # noqa: E402

MODEL = ROOT / "models" / "tiny-world-sd1.safetensors"


@pytest.fixture
def settings(tmp_path) -> UiSettings:
    return UiSettings.from_values({"output": str(tmp_path / "out"), "python": sys.executable})


@pytest.fixture
def runner(settings) -> JobRunner:
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    yield runner
    for job in runner.jobs():  # a failed test leaves no job running (this process stands in for some)
        if runner.is_running(job) and job.pid != os.getpid():
            os.killpg(job.pid, signal.SIGKILL)


@pytest.fixture
def words(tmp_path) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("red hair 500\nblue background 300\nstar hair ornament 100\n", encoding="utf-8")
    return path


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def small(**changes) -> images_tab.ImagesForm:
    fields = dict(model=str(MODEL), mode="word frequency", source="", count=2, name="1_words", steps=2,
                  width=64, height=64)
    return images_tab.ImagesForm(**{**fields, **changes})


def test_a_word_frequency_set_is_generated_as_a_job_and_shown(settings, runner, words):
    assert images_tab.view(runner)[0] == "no regularization images job yet"
    message = images_tab.start(runner, settings, small(source=str(words)))
    assert message.startswith("started job ") and message.endswith(str(settings.output / "reg_images" / "1_words"))
    job = runner.latest(images_tab.KIND)
    assert runner.wait(job, 180)
    line, gallery, tail = images_tab.view(runner)
    folder = settings.output / "reg_images" / "1_words"
    assert line == f"{images_tab.KIND} job {job.id}: **finished**, 2 of 2 images in `{folder}`"
    assert sorted(Path(p).name for p in gallery) == sorted(p.name for p in folder.glob("*.png")) and len(gallery) == 2
    drawn = {(folder / Path(p).with_suffix(".txt").name).read_text(encoding="utf-8").strip() for p in gallery}
    assert drawn <= {"red hair", "blue background", "star hair ornament"}
    assert "2 image(s) written" in tail
    assert train_tab.view(runner)[0] == "no training job yet"  # each tab shows its own kind of job


def test_the_images_form_is_checked_before_any_job(settings, runner, words, tmp_path):
    assert images_tab.start(runner, settings, small(source=str(tmp_path / "nope.txt"))) == (
        f"word list or dataset folder: no such file or folder: {tmp_path / 'nope.txt'}")
    assert images_tab.start(runner, settings, small(mode="class", source=" ")).startswith("class prompt: empty")
    assert images_tab.start(runner, settings, small(source=str(words), name="../up")).startswith(
        "set name '../up': use letters")
    assert images_tab.start(runner, settings, small(source=str(words), count=0)) == (
        "number of images 0: at least 1")
    assert runner.jobs() == []
    args = images_tab.job_args(settings, small(mode="class", source="-lowres girl", negative="-x"))
    assert "--class_prompt=-lowres girl" in args and args[-1] == "--negative_prompt=-x"  # a leading '-' stays text
    # a folder may be a diffusers model: the script judges it, and its refusal shows as a failed job
    assert images_tab.start(runner, settings, small(source=str(words), model=str(tmp_path))).startswith("started job")
    job = runner.latest(images_tab.KIND)
    assert job.flag("--model") == str(tmp_path) and runner.wait(job, 60)
    assert images_tab.view(runner)[0].startswith(f"{images_tab.KIND} job {job.id}: **failed**")


def test_stop_ends_a_class_set_as_stopped_and_start_goes_on_with_what_is_done(settings, runner):
    form = small(mode="class", source="1girl", count=400)
    images_tab.start(runner, settings, form)
    job = runner.latest(images_tab.KIND)
    folder = settings.output / "reg_images" / "1_words"
    wait_for(lambda: len(list(folder.glob("*.png"))) >= 2)
    assert train_tab.view(runner)[0] == "no training job yet"  # the running job is not a training
    assert runner.stop_current(train_tab.KIND) == (f"the running job is the {images_tab.KIND} job {job.id}: stop it "
                                                   f"from its own tab")  # the Train tab's Stop leaves it
    assert runner.is_running(job)
    assert runner.stop_current(images_tab.KIND).startswith(f"stopping the {images_tab.KIND} job {job.id}: it keeps")
    assert runner.wait(job, 60)
    kept = len(list(folder.glob("*.png")))
    assert images_tab.view(runner)[0].startswith(f"{images_tab.KIND} job {job.id}: **stopped**, {kept} of 400")
    images_tab.start(runner, settings, small(mode="class", source="1girl", count=kept + 1))
    again = runner.latest(images_tab.KIND)
    assert again.id != job.id and runner.wait(again, 120)
    assert images_tab.view(runner)[0].startswith(f"{images_tab.KIND} job {again.id}: **finished**, {kept + 1} of")
    assert "1 image(s) written" in images_tab.view(runner)[2]  # only the missing one was drawn


def test_the_compare_tab_runs_the_comparable_analysis_of_two_models(settings, runner, tmp_path):
    from library.models.sd_model import save_model
    from library.tiny import build_random

    files = compare_tab.prompt_files(settings)
    assert next(iter(files)) == "comparable_analysis.txt" and "world_compare.txt" in files
    other = save_model(build_random("tiny-world-sd1", seed=5), tmp_path / "random.safetensors")
    prompts = "\n\n".join(files["world_compare.txt"].read_text(encoding="utf-8").split("\n\n")[1:3])  # 2 prompts
    form = compare_tab.CompareForm([str(MODEL), str(other)], prompts, "look", size="64x64", steps="2")
    assert compare_tab.start(runner, settings, form).startswith("started job ")
    job = runner.latest(compare_tab.KIND)
    assert runner.wait(job, 180)
    line, grid, _ = compare_tab.view(runner)
    folder = settings.output / "compare" / "look"
    assert line.startswith(f"compare job {job.id}: **finished**, 4 image(s); the grid and")
    assert grid == str(folder / "grid.png") and (folder / "index.html").is_file()
    assert (folder / "prompts.txt").read_text(encoding="utf-8") == prompts
    from PIL import Image
    with Image.open(grid) as image:
        assert image.info["parameters"].startswith("Comparable Analysis: tiny-world-sd1 [12380ab540], random [")
    with Image.open(next((folder / "01-random").glob("01-*.png"))) as image:
        assert "Steps: 2, " in image.info["parameters"] and "Size: 64x64" in image.info["parameters"]


def test_the_compare_form_is_checked_before_any_job(settings, runner, tmp_path):
    def start(**changes) -> str:
        fields = dict(models=[str(MODEL)], prompts="1girl\nSteps: 2, Seed: 1, Size: 64x64", name="x")
        return compare_tab.start(runner, settings, compare_tab.CompareForm(**{**fields, **changes}))

    assert start(models=[]) == "choose at least one model (the grid's columns)"
    assert start(models=[str(tmp_path / "gone.safetensors")]).startswith("model: no such file or folder")
    assert start(prompts="  ").startswith("prompts: empty")
    assert start(steps="two").startswith("steps 'two': give a whole number")
    assert start(name="a/b").startswith("comparison name 'a/b'")
    assert runner.jobs() == [] and not (settings.output / "compare").exists()


def test_fields_are_resolved_and_checked(tmp_path):
    (tmp_path / "d").mkdir()
    assert existing_path(f"{tmp_path}/d/../d", "data", folder=True) == tmp_path / "d"
    with pytest.raises(JobError, match=f"data: no such file: {tmp_path / 'd'}"):
        existing_path(str(tmp_path / "d"), "data", folder=False)
    with pytest.raises(JobError, match="data: empty"):
        existing_path("", "data")
    assert folder_name("10_sks girl".replace(" ", "_"), "set") == "10_sks_girl"
    for bad in ("", "..", "a/b", ".hidden", "x" * 65):
        with pytest.raises(JobError):
            folder_name(bad, "set")


def _record(folder: Path, pid: int, created: float) -> None:
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"id": folder.name, "kind": "train", "argv": [], "folder": str(folder),
                                                 "pid": pid, "created": created, "started": "now"}))


def test_the_webui_model_is_freed_for_training_and_put_back_once_no_job_runs(settings, runner, monkeypatch,
                                                                             tmp_path):
    calls = []
    model = train_tab.WebuiModel(lambda: calls.append("free"), lambda: calls.append("reload"), poll_seconds=0.05)
    form = train_tab.Form("learning_rate = 1e-6\n", "run", str(tmp_path / "missing.safetensors"))
    assert train_tab.start(runner, settings, form, model).startswith("base model: no such file")
    assert calls == []  # nothing started: the model stays

    record = settings.output / ".jobs" / "20261207-000000-001"

    def start(kind, script, args, progress=False, before=None):  # the job starts: this process stands in for it
        before()
        me = psutil.Process(os.getpid())
        _record(record, me.pid, me.create_time())
        return runner.jobs()[0]

    monkeypatch.setattr(runner, "start", start)
    message = train_tab.start(runner, settings, train_tab.Form("learning_rate = 1e-6\n", "run", str(MODEL)), model)
    assert calls == ["free"] and message.endswith("the WebUI's model is freed until no job runs")
    assert (settings.output / "run" / "ui_config.toml").read_text() == "learning_rate = 1e-6\n"
    watcher = train_tab.WebuiModel._watcher
    time.sleep(0.3)
    assert watcher.is_alive() and calls == ["free"]  # the job runs: the model stays off
    again = train_tab.WebuiModel(lambda: calls.append("free 2"), lambda: calls.append("reload 2"))  # a reloaded UI
    again.free_now()
    assert again.reload_after_jobs(runner) is watcher and calls == ["free"]  # the watcher there puts it back
    (record / "job.json").unlink()  # the job has ended
    watcher.join(5)
    assert not watcher.is_alive() and calls == ["free", "reload"]  # put back once, with no page polling
