"""The extension without a browser: the Train tab's work (Validate through `train_certain.py --check`, the form's
arguments, the view the page polls), the WebUI script against stand-ins with A1111's signatures, and the gradio UI
built by the standalone's Python (`.venv-ui`, made by setup.sh)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "extension"))
from certain_strategy_ui import train_tab  # noqa: E402
from certain_strategy_ui.jobs import JobError, JobRunner  # noqa: E402
from certain_strategy_ui.settings import KEYS, SECTION, UiSettings  # noqa: E402

from library.quickstart import prepare_quickstart  # noqa: E402

PRESET = (ROOT / "configs" / "presets" / "quickstart.toml").read_text(encoding="utf-8")


@pytest.fixture
def settings(tmp_path) -> UiSettings:
    return UiSettings.from_values({"output": str(tmp_path / "runs"), "python": sys.executable})


def test_validate_runs_the_check_on_the_form_and_names_the_tomls_line(settings, tmp_path):
    base = prepare_quickstart(tmp_path / "qs")
    form = train_tab.Form(PRESET, "first", str(base), str(tmp_path / "qs" / "dataset" / "train"))
    report = train_tab.validate(settings, form)
    assert report.startswith("check passed") and "steps: 132 (33 per epoch, 4 epoch(s))" in report
    assert f"--- plan ---" in report and str(settings.output / "first") in report
    typo = PRESET.replace("learning_rate = 5e-4", "learnig_rate = 5e-4")
    line = next(n for n, text in enumerate(typo.splitlines(), start=1) if text.startswith("learnig_rate"))
    report = train_tab.validate(settings, train_tab.Form(typo, "first", str(base)))
    assert report.startswith("check failed (exit 2)")
    assert f"error: config.toml:{line}: unknown key `learnig_rate`" in report and "learning_rate" in report
    assert not (settings.output / "first").exists()  # checking made no run folder


def test_a_run_name_that_is_not_a_folder_name_is_refused(settings):
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    assert "run name '../x'" in train_tab.start(runner, settings, train_tab.Form(PRESET, "../x"))
    assert runner.jobs() == []


def test_the_view_shows_a_jobs_progress_from_its_files(settings):
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    assert train_tab.view(runner)[0] == "no training job yet"
    folder = settings.output / ".jobs" / "20261207-000000-00100"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"id": folder.name, "kind": "train", "argv": [], "folder": str(folder),
                                                 "pid": 1, "created": 0.0, "started": "then"}))
    events = [{"event": "start", "total_steps": 10}, *({"event": "step", "step": s, "epoch": 1, "loss": 1 / s,
                                                         "lr": 1e-4, "it_s": 2.0, "eta_s": 5.0} for s in (1, 2, 3)),
              {"event": "sample", "step": 3, "files": [str(folder / "a.png")], "grid": str(folder / "grid.png")},
              {"event": "end", "step": 3, "interrupted": True}]
    for name in ("a.png", "grid.png"):
        (folder / name).write_bytes(b"")
    (folder / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "exit_code").write_text("130\n")
    line, svg, sample, _, progress = train_tab.view(runner)
    assert line.startswith(f"train job {folder.name}: **stopped**, step 3/10, epoch 1, loss 0.3333")
    assert "it/s" not in line and "ETA" not in line  # a stopped job has no rate
    assert svg.count("<polyline") == 1 and sample == str(folder / "grid.png")


def test_the_resume_list_is_the_runs_states_newest_first(settings):
    for index, name in enumerate(("a-000001-state", "a-000002-state")):
        state = settings.output / "run" / name
        state.mkdir(parents=True)
        (state / "progress.json").write_text("{}")
        import os
        os.utime(state / "progress.json", (1000 + index, 1000 + index))
    assert [Path(s).name for s in train_tab.resume_choices(settings, "run")] == ["a-000002-state", "a-000001-state"]


def test_the_webui_script_registers_the_tab_and_three_settings(monkeypatch, tmp_path):
    """Stand-ins with the signatures of A1111's modules.script_callbacks, modules.shared and modules.sd_models."""
    registered: dict[str, list] = {"ui_tabs": [], "ui_settings": []}
    callbacks = types.SimpleNamespace(on_ui_tabs=registered["ui_tabs"].append,
                                      on_ui_settings=registered["ui_settings"].append)

    class OptionInfo:
        def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                     section=None, refresh=None, comment_before="", comment_after="", infotext=None,
                     restrict_api=False, category_id=None):
            self.default, self.label, self.section = default, label, section

    class Options:
        def __init__(self):
            self.data_labels = {}

        def add_option(self, key, info):
            self.data_labels[key] = info

    shared = types.SimpleNamespace(opts=Options(), OptionInfo=OptionInfo)
    info = types.SimpleNamespace(filename=str(tmp_path / "b.safetensors"), title="b.safetensors [0123456789]")
    other = types.SimpleNamespace(filename=str(tmp_path / "a.safetensors"), title="a.safetensors [9876543210]")
    moved = []
    queue_lock = threading.Lock()  # modules.call_queue.queue_lock: held around generation
    call_queue = types.SimpleNamespace(queue_lock=queue_lock)
    sd_models = types.SimpleNamespace(checkpoints_list={info.title: info, other.title: other},
                                      model_data=types.SimpleNamespace(sd_model=None),
                                      unload_model_weights=lambda sd_model=None, info=None: moved.append(
                                          ("cpu", queue_lock.locked())),
                                      send_model_to_device=lambda m: moved.append(("device", m, queue_lock.locked())))
    modules = types.ModuleType("modules")
    modules.script_callbacks, modules.shared, modules.sd_models = callbacks, shared, sd_models
    modules.call_queue = call_queue
    for name, module in (("modules", modules), ("modules.script_callbacks", callbacks), ("modules.shared", shared),
                         ("modules.sd_models", sd_models), ("modules.call_queue", call_queue)):
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("certain_script", ROOT / "extension" / "scripts" /
                                                  "certain_strategy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert len(registered["ui_tabs"]) == 1 and len(registered["ui_settings"]) == 1
    registered["ui_settings"][0]()
    options = shared.opts.data_labels
    assert set(options) == set(KEYS.values()) and all(o.section == SECTION for o in options.values())
    assert options[KEYS["toolkit"]].default == str(ROOT)
    assert script.webui_checkpoints() == [other.filename, info.filename]
    script.free_webui_model()  # no model loaded: none is loaded just to be freed
    script.reload_webui_model()
    assert moved == []
    sd_models.model_data.sd_model = "the loaded model"
    script.free_webui_model()
    script.reload_webui_model()
    assert moved == [("cpu", True), ("device", "the loaded model", True)]  # under the WebUI's generation lock


@pytest.mark.parametrize("env", ["", "-a1111", "-forge"])
def test_the_ui_builds_with_each_gradio(env, tmp_path):
    """The standalone's gradio, A1111 1.10's (3.41.2) and Forge's (4.40.0), each in the small environment setup.sh
    makes from extension/requirements-ui{env}.txt."""
    python = ROOT / f".venv-ui{env}" / "bin" / "python"
    assert python.is_file(), f"{python.parent.parent.name} is missing: run `bash setup.sh`"
    code = ("import sys, json, warnings; sys.path.insert(0, 'extension')\n"
            "warnings.simplefilter('error', UserWarning)\n"  # gradio 3.41 only warns of an argument it ignores
            "from certain_strategy_ui.settings import UiSettings\nfrom certain_strategy_ui.ui import build_ui\n"
            f"blocks = build_ui(UiSettings.from_values({{'output': {str(tmp_path)!r}}}), lambda: ['m.safetensors'])\n"
            "import gradio\nloaded = [m for m in ('torch', 'diffusers', 'library') if m in sys.modules]\n"
            "print(json.dumps([gradio.__version__, blocks.config['components'], loaded]))")
    done = subprocess.run([str(python), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    version, components, loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded == []  # the WebUI's process never imports training code
    labels = {c.get("props", {}).get("label") for c in components}
    assert {"Train", "Regularization images", "Similarity", "Compare", "Runs", "Base model (a checkpoint file)",
            "Newest images of the set", "Grid (rows: prompts, columns: models)",
            "Free the WebUI's model while training (reloaded when the job ends)",
            "Args TOML (kohya keys; paste a forum config as it is)",
            "Resume from a saved state (newest first)", "Latest sample"} <= labels
    model = next(c for c in components if c.get("props", {}).get("label") == "Base model (a checkpoint file)")
    assert "m.safetensors" in json.dumps(model["props"]["choices"])
    pinned = (ROOT / "extension" / f"requirements-ui{env}.txt").read_text().split("gradio==")[1].split()[0]
    assert version == pinned


def test_the_runs_tab_lists_runs_newest_first_with_their_report_and_toml(settings):
    import os
    import shutil

    from certain_strategy_ui import runs_tab

    assert runs_tab.list_runs(settings) == []
    for index, name in enumerate(("older", "newer")):
        folder = settings.output / name
        folder.mkdir(parents=True)
        (folder / "checkpoints.json").write_text("{}")
        os.utime(folder / "checkpoints.json", (1000 + index, 1000 + index))
    (settings.output / "not-a-run").mkdir()
    (settings.output / ".jobs").mkdir()
    assert runs_tab.list_runs(settings) == ["newer", "older"]
    folder = settings.output / "newer"
    (folder / "report.md").write_text("# Training report\n")
    (folder / "ui_config.toml").write_text("learning_rate = 1e-6\n")
    shutil.copy(ROOT / "docs" / "validation_report.png", folder / "report.png")
    report, plot, toml = runs_tab.run_details(settings, "newer")
    assert report.startswith("# Training report") and plot == str(folder / "report.png")
    assert toml == "learning_rate = 1e-6\n"
    from safetensors.torch import save_file
    import torch

    older = settings.output / "older"  # started from the command line: its options come from its checkpoint
    save_file({"w": torch.zeros(1)}, str(older / "run-000001.safetensors"),
              metadata={"certain.training_options": "learning_rate = 2e-6\n"})
    assert runs_tab.run_details(settings, "older")[2].endswith("\nlearning_rate = 2e-6\n")
    (older / "broken.safetensors").write_bytes(b"\xff" * 4)  # newer and unreadable: the next one is read
    assert runs_tab.run_details(settings, "older")[2].endswith("\nlearning_rate = 2e-6\n")
    for outside in ("../../etc", "..", "."):
        assert runs_tab.run_details(settings, outside)[0] == "choose a run"


def test_the_similarity_tab_computes_as_a_job_and_reads_a_comparison_back_by_hash(settings, tmp_path):
    from certain_strategy_ui import similarity_tab

    from library.models.sd_model import save_model
    from library.tiny import build_random

    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    assert similarity_tab.view(runner, settings)[0] == "no comparison yet"
    base = ROOT / "models" / "tiny-world-sd1.safetensors"
    other = save_model(build_random("tiny-world-sd1", seed=5), tmp_path / "random.safetensors")
    assert similarity_tab.start(runner, settings, "", [str(base), str(other)]).startswith("comparing 2 models (a job)")
    job = runner.latest(similarity_tab.KIND)
    assert runner.wait(job, 120)
    status, table, blocks, heatmap = similarity_tab.view(runner, settings)
    assert status == "" and "| random.safetensors |" in table and "| model | IN01 |" in blocks
    assert Path(heatmap).is_file() and table.startswith("base: tiny-world-sd1.safetensors")
    percent = float(table.split("| random.safetensors |")[1].split("|")[1].strip().rstrip("%"))
    assert 0 < percent < 99  # random weights against the trained ones
    assert similarity_tab.start(runner, settings, str(base), [str(other)]).startswith("read back")
    assert [j.id for j in runner.jobs()] == [job.id] and similarity_tab.view(runner, settings)[1] == table
    assert similarity_tab.start(runner, settings, str(base), [str(tmp_path / "gone.safetensors")]) == (
        f"model: no such file: {tmp_path / 'gone.safetensors'}")


def test_start_while_a_job_runs_leaves_the_runs_config_alone(settings):
    import os

    import psutil

    me = psutil.Process(os.getpid())  # this process stands in for the running job
    folder = settings.output / ".jobs" / "20261207-000000-00100"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"id": folder.name, "kind": "train", "argv": [], "folder": str(folder),
                                                 "pid": me.pid, "created": me.create_time(), "started": "now"}))
    config = settings.output / "busy" / "ui_config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("learning_rate = 1e-6\n")
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    message = train_tab.start(runner, settings, train_tab.Form("learning_rate = 1.0\n", "busy"))
    assert message.startswith(f"one job at a time: the train job {folder.name}")
    assert config.read_text() == "learning_rate = 1e-6\n"


def test_only_a_saved_state_under_the_output_folder_is_resumed(settings, tmp_path):
    elsewhere = tmp_path / "elsewhere-state"
    elsewhere.mkdir()
    (elsewhere / "progress.json").write_text("{}")
    config = settings.output / "run" / "ui_config.toml"
    with pytest.raises(JobError, match="not a state of a run under"):
        train_tab.job_args(settings, train_tab.Form("", "run", resume=str(elsewhere)), config)
    state = settings.output / "run" / "run-000003-state"
    state.mkdir(parents=True)
    (state / "progress.json").write_text("{}")
    assert train_tab.job_args(settings, train_tab.Form("", "run", resume=str(state)), config)[-2:] == [
        "--resume", str(state)]


def test_a_reloaded_page_gets_back_the_last_trainings_form(settings, tmp_path):
    runner = JobRunner(settings.output / ".jobs", settings.toolkit, settings.python)
    assert train_tab.last_form(runner) is None
    config = settings.output / "mine" / "ui_config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("learning_rate = 1e-6\n")
    folder = settings.output / ".jobs" / "20261207-000000-001"
    folder.mkdir(parents=True)
    argv = ["python", "train_certain.py", "--config_file", str(config), "--output_dir", str(config.parent),
            "--pretrained_model_name_or_path", "/m.safetensors", "--train_data_dir", "/data"]
    (folder / "job.json").write_text(json.dumps({"id": folder.name, "kind": "train", "argv": argv,
                                                 "folder": str(folder), "pid": 1, "created": 0.0, "started": "then"}))
    assert train_tab.last_form(runner) == train_tab.Form("learning_rate = 1e-6\n", "mine", "/m.safetensors", "/data")
