"""Screenshots of each tab of the standalone UI at work, for docs/ and the README: a tiny training run (its status,
loss curve and latest sample), a regularization set, the similarity table, a Comparable Analysis grid and the run's
page, each made through the page as a user makes it. About 80 s on two CPU cores:

    .venv/bin/python tests/make_screenshots.py docs/ui
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browser import ROOT, Page, chromium, standalone  # noqa: E402

MODEL = ROOT / "models" / "tiny-world-sd1.safetensors"
CONFIG = f'''[model_arguments]
pretrained_model_name_or_path = "{MODEL}"
clip_skip = 2

[dataset_arguments]
resolution = "128"
cache_latents = true
max_data_loader_n_workers = 0

[training_arguments]
max_train_steps = 400
train_batch_size = 4
seed = 1
stop_text_encoder_training = -1

[optimizer_arguments]
learning_rate = 5e-4

[saving_arguments]
output_name = "tiny-sks"
save_every_n_steps = 20
save_state = true

[sample_prompt_arguments]
sample_prompts = "{ROOT / 'configs' / 'presets' / 'quickstart_prompts.txt'}"
sample_every_n_steps = 20
'''


def step(page: Page) -> int:
    match = re.search(r"step (\d+)/", page.text("certain_strategy_status"))
    return int(match[1]) if match else -1


def shoot(page: Page, folder: Path, name: str, scroll_to: str | None = None) -> None:
    time.sleep(2.5)  # one poll of the page
    if scroll_to:
        page.driver.execute_script("arguments[0].scrollIntoView();", page.element(f"#{scroll_to}"))
        time.sleep(0.5)
    page.driver.save_screenshot(str(folder / f"{name}.png"))
    print(f"wrote {folder / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    from library.quickstart import prepare_quickstart

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        prepare_quickstart(root / "qs")
        dataset = root / "qs" / "dataset" / "train"
        output = root / "ui_runs"
        output.mkdir()
        with standalone(output) as url, chromium(1400, 1500) as driver:
            page = Page(driver, url)
            page.type("certain_strategy_dataset", str(dataset))
            page.paste("certain_strategy_toml", CONFIG)
            page.click("certain_strategy_start")
            page.wait(lambda: step(page) >= 45, 600, "45 steps")
            shoot(page, args.folder, "train")
            page.click("certain_strategy_stop")
            page.wait(lambda: "stopped" in page.text("certain_strategy_status"), 120, "the stop")
            checkpoint = sorted((output / "my-run").glob("tiny-sks-*.safetensors"))[-1]

            page.open_tab("Regularization images")
            page.enter("certain_strategy_reg_model", str(checkpoint))
            page.type("certain_strategy_reg_source", str(dataset))
            for field, value in (("reg_count", "16"), ("reg_steps", "16"), ("reg_width", "128"),
                                 ("reg_height", "128")):
                page.type(f"certain_strategy_{field}", value)
            page.click("certain_strategy_reg_start")
            page.wait(lambda: "finished" in page.text("certain_strategy_reg_status"), 300, "the set")
            shoot(page, args.folder, "regularization_images")

            page.open_tab("Similarity")
            page.type("certain_strategy_sim_paths", f"{MODEL}\n{checkpoint}")
            page.click("certain_strategy_sim_go")
            page.wait(lambda: checkpoint.name in page.text("certain_strategy_sim_table"), 300, "the table")
            shoot(page, args.folder, "similarity")

            page.open_tab("Compare")
            page.type("certain_strategy_cmp_paths", f"{MODEL}\n{checkpoint}")
            page.paste("certain_strategy_cmp_prompts", (ROOT / "configs" / "world_compare.txt").read_text())
            page.click("certain_strategy_cmp_start")
            page.wait(lambda: "finished" in page.text("certain_strategy_cmp_status"), 600, "the grid")
            shoot(page, args.folder, "compare", scroll_to="certain_strategy_cmp_status")

            page.open_tab("Runs")
            page.click("certain_strategy_runs_refresh")
            time.sleep(1)
            page.choose_first("certain_strategy_runs")
            shoot(page, args.folder, "runs")


if __name__ == "__main__":
    main()
