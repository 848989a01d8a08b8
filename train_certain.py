#!/usr/bin/env python3
"""Fine-tune Stable Diffusion 1.x/2.x with the Certain method; takes kohya sd-scripts options and TOML.

    python train_certain.py --config_file my.toml [--dataset_config data.toml] [--any_option value]
    python train_certain.py --quickstart      # tiny embedded model + sample dataset, no downloads

This version checks the configuration, loads the base model offline (with its A1111 hashes) and lists the
dataset. The training loop itself is the next issue: nothing is trained yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

from library.errors import UserError

QUICKSTART_FLAG = "--quickstart"


def quickstart_args(root: Path) -> list[str]:
    from library.quickstart import prepare_quickstart

    qs = prepare_quickstart(root)
    return ["--pretrained_model_name_or_path", str(qs.model), "--train_data_dir", str(qs.train_data_dir),
            "--reg_data_dir", str(qs.reg_data_dir), "--caption_extension", ".txt", "--resolution", "128",
            "--output_dir", str(root / "output")]


def run(argv: list[str]) -> int:
    from library.config import build_parser, load_train_config, write_args_file

    if "-h" in argv or "--help" in argv:
        parser = build_parser()
        parser.add_argument(QUICKSTART_FLAG, action="store_true",
                            help="run on the embedded tiny model and sample dataset (made in ./quickstart)")
        parser.print_help()
        return 0
    if QUICKSTART_FLAG in argv:
        argv = quickstart_args(Path("quickstart")) + [a for a in argv if a != QUICKSTART_FLAG]
    loaded = load_train_config(argv)
    train = loaded.train
    if train.config.output_config:
        print(f"wrote {write_args_file(train, train.config.config_file)}")
        return 0
    for note in loaded.notes:
        print(f"note: {note}")
    if not train.model.pretrained_model_name_or_path:
        raise UserError("no base model: set pretrained_model_name_or_path (a .safetensors/.ckpt file or a "
                        "diffusers folder).")
    if loaded.datasets is None:
        raise UserError("no training data: set train_data_dir (folder of `10_name` subfolders), in_json, or "
                        "dataset_config.")

    from library.data.listing import describe_datasets
    from library.models.hashes import model_hashes
    from library.models.sd_model import load_model

    source = Path(train.model.pretrained_model_name_or_path)
    model = load_model(source, v_parameterization=True if train.model.v_parameterization else None,
                       vae=train.model.vae)
    if train.model.v2 and model.family != "sd2":
        raise UserError(f"{source}: v2 = true, but the weights are an SD1 model; remove v2.")
    if model.family == "sd2" and not train.model.v2:
        print("note: SD2 weights detected; v2 = true is implied.")
    print("\n".join(model.describe()))
    if source.is_file():
        hashes = model_hashes(source)
        print(f"model hash: {hashes.autov2} (AutoV2), {hashes.legacy} (old), sha256 {hashes.sha256}")
    print("\n".join(describe_datasets(loaded.datasets)))
    print("The training loop is not in this version yet: configuration, model and dataset check out; "
          "nothing was trained.")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
