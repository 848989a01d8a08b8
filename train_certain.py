#!/usr/bin/env python3
"""Fine-tune Stable Diffusion 1.x/2.x with the Certain method; takes kohya sd-scripts options and TOML.

    python train_certain.py --config_file my.toml [--dataset_config data.toml] [--any_option value]
    accelerate launch train_certain.py --config_file my.toml      # several GPUs (DDP)
    python train_certain.py --quickstart      # the shipped tiny world model + sample dataset, no downloads
    python train_certain.py --check --config_file my.toml    # check everything, print the plan, train nothing
"""

from __future__ import annotations

import sys
from pathlib import Path

from library.errors import run_reporting_user_errors

QUICKSTART_FLAG = "--quickstart"
QUICKSTART_CONFIG = Path(__file__).resolve().parent / "configs" / "presets" / "quickstart.toml"


def run(argv: list[str]) -> int:
    from library.config import build_parser, load_train_config, write_args_file

    if "-h" in argv or "--help" in argv:
        parser = build_parser()
        parser.add_argument(QUICKSTART_FLAG, action="store_true",
                            help="fine-tune the shipped tiny world model on the sample dataset (made in ./quickstart)")
        parser.print_help()
        return 0
    if QUICKSTART_FLAG in argv:
        from library.quickstart import prepare_quickstart

        base = prepare_quickstart(Path("quickstart"))
        prompts = QUICKSTART_CONFIG.with_name("quickstart_prompts.txt")
        argv = ["--config_file", str(QUICKSTART_CONFIG), "--sample_prompts", str(prompts),
                "--pretrained_model_name_or_path", str(base)] + [a for a in argv if a != QUICKSTART_FLAG]
    loaded = load_train_config(argv)
    if loaded.train.config.output_config:
        print(f"wrote {write_args_file(loaded.train, loaded.train.config.config_file)}")
        return 0

    if loaded.train.config.check:
        from library.training.check import check_run

        return check_run(loaded)
    if loaded.train.workflow.workflow != "none":
        from library.workflows import run_workflow

        return run_workflow(loaded)
    from library.training.run import run_training

    return run_training(loaded)


def main(argv: list[str] | None = None) -> int:
    return run_reporting_user_errors(lambda: run(list(sys.argv[1:] if argv is None else argv)), status=2)


if __name__ == "__main__":
    sys.exit(main())
