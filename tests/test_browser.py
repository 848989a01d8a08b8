"""The standalone UI in a real browser (Debian's Chromium, headless, driven by Selenium), as a user uses it: the
similarity of two tiny checkpoints read from the page's table, and a tiny training run started from the Train tab,
its step counter watched as it advances, stopped, and resumed from the state it saved. `.ci/run` installs Chromium
(Debian packages) and setup.sh installs Selenium, so this runs in CI; elsewhere it is skipped without Chromium."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from browser import CHROMEDRIVER, CHROMIUM, ROOT, Page, chromium, standalone

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                                reason="needs Debian's chromium and chromium-driver (`.ci/run` installs them)")

MODEL = ROOT / "models" / "tiny-world-sd1.safetensors"


def config(steps: int) -> str:
    """A forum-style args TOML for a tiny run of `steps` steps (the dataset comes from its field)."""
    return f'''[model_arguments]
pretrained_model_name_or_path = "{MODEL}"
clip_skip = 2

[dataset_arguments]
resolution = "64"
cache_latents = true
max_data_loader_n_workers = 0

[training_arguments]
max_train_steps = {steps}
train_batch_size = 2
seed = 1
stop_text_encoder_training = -1

[optimizer_arguments]
learning_rate = 1e-4

[saving_arguments]
save_state = true
'''


def step_of(status: str) -> int:
    match = re.search(r"step (\d+)/(\d+)", status)
    return int(match[1]) if match else -1


def test_similarity_and_a_training_run_stopped_and_resumed_in_the_browser(tmp_path):
    from library.models.sd_model import save_model
    from library.quickstart import prepare_quickstart
    from library.tiny import build_random

    prepare_quickstart(tmp_path / "qs")
    dataset = tmp_path / "qs" / "dataset" / "train"
    other = save_model(build_random("tiny-world-sd1", seed=5), tmp_path / "random.safetensors")
    output = tmp_path / "runs"
    output.mkdir()
    with standalone(output) as url, chromium() as driver:
        page = Page(driver, url)
        assert list(page.tabs()) == ["Train", "Regularization images", "Similarity", "Compare", "Runs"]

        page.open_tab("Similarity")
        page.type("certain_strategy_sim_paths", f"{MODEL}\n{other}")
        page.click("certain_strategy_sim_go")  # a job: the table comes with the page's polling
        table = page.wait(lambda: "random.safetensors" in page.text("certain_strategy_sim_table")
                          and page.text("certain_strategy_sim_table"), 180, "the similarity table")
        row = next(line for line in table.splitlines() if line.startswith("random.safetensors"))
        percent = float(row.split()[-1].rstrip("%"))
        assert table.startswith("base: tiny-world-sd1.safetensors [") and 0 < percent < 99

        page.open_tab("Train")
        page.type("certain_strategy_dataset", str(dataset))
        page.paste("certain_strategy_toml", config(400))
        page.click("certain_strategy_start")
        assert page.wait(lambda: page.text("certain_strategy_message").startswith("started job "), 30,
                         "the job to start")
        first = page.wait(lambda: step_of(page.text("certain_strategy_status")) >= 2 and
                          step_of(page.text("certain_strategy_status")), 180, "the first steps")
        later = page.wait(lambda: step_of(page.text("certain_strategy_status")) > first and
                          step_of(page.text("certain_strategy_status")), 60, "the step counter to advance")
        assert "/400" in page.text("certain_strategy_status") and "running" in page.text("certain_strategy_status")
        driver.refresh()  # a reloaded page finds the running job and gets its form back
        page = Page(driver, None)
        page.wait(lambda: step_of(page.text("certain_strategy_status")) > later, 60, "the job after a reload")
        assert page.text("certain_strategy_toml") == config(400) and page.text("certain_strategy_dataset") == str(dataset)
        assert step_of(page.text("certain_strategy_status")) < 400, "the run ended before it could be stopped"
        page.click("certain_strategy_stop")
        stopped = page.wait(lambda: "stopped" in page.text("certain_strategy_status") and
                            page.text("certain_strategy_status"), 120, "the job to stop")
        saved = step_of(stopped)

        page.paste("certain_strategy_toml", config(saved + 4))  # four steps more, for a short test
        page.click("certain_strategy_states")
        state = page.choose_first("certain_strategy_resume")
        assert json.loads((Path(state) / "progress.json").read_text())["global_step"] == saved
        page.click("certain_strategy_start")
        assert page.wait(lambda: "resuming" in page.text("certain_strategy_message"), 30, "the resumed job")
        page.wait(lambda: "finished" in page.text("certain_strategy_status"), 240, "the resumed run to finish")
        assert step_of(page.text("certain_strategy_status")) == saved + 4
        driver.save_screenshot(str(tmp_path / "train.png"))
    progress = [json.loads(line) for events in sorted((output / ".jobs").glob("*/progress.jsonl"))
                for line in events.read_text().splitlines()]
    resumed = [e["step"] for e in progress if e["event"] == "step"]
    assert resumed == [*range(1, saved + 1), *range(saved + 1, saved + 5)]  # the second job went on from the saved step
