"""Load a single-file SD checkpoint with our loader and with diffusers' `from_single_file`; compare.

    python bench/load_speed.py --config tiny-sd1            # tiny model, seconds
    python bench/load_speed.py --config sd1 --precision fp16 # real SD1.5 size (2 GB file, ~12 GB RAM)

It writes a random-weight checkpoint of the chosen architecture in LDM layout, then loads it both ways
(`--repeats` times, median) and checks every UNet, VAE and text-encoder tensor is identical. diffusers'
converter is an independent implementation of the LDM key layout, so agreement at full size is the
evidence that a real downloaded checkpoint loads through our path; the ratio is our load time over theirs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from library.models.model_config import shipped_config  # noqa: E402
from library.models.sd_model import load_model, save_model  # noqa: E402
from library.tiny import build_random  # noqa: E402
from library.text.tokenizer import save_tokenizer  # noqa: E402


def diffusers_load(path: Path, config_dir: Path):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_single_file(str(path), config=str(config_dir), local_files_only=True,
                                                    safety_checker=None, feature_extractor=None)


def timed(fn, repeats: int, before=None):
    """Median wall time of `fn` over `repeats` runs, and its last result; `before` runs untimed before each."""
    times, result = [], None
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tiny-sd1", help="shipped model config: tiny-sd1, sd1, sd2-512, ...")
    parser.add_argument("--precision", choices=["float", "fp16"], default="float")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = save_model(build_random(args.config, 0), tmp / "model.safetensors", precision=args.precision)
        config_dir = shipped_config(args.config).folder
        pipe_config = tmp / "config"
        for part in ("unet", "vae", "text_encoder", "scheduler"):
            (pipe_config / part).mkdir(parents=True)
            for f in (config_dir / part).iterdir():
                (pipe_config / part / f.name).write_bytes(f.read_bytes())
        (pipe_config / "model_index.json").write_bytes((config_dir / "model_index.json").read_bytes())
        save_tokenizer(shipped_config(args.config).family, pipe_config / "tokenizer")
        ours_s, ours = timed(lambda: load_model(ckpt), args.repeats)
        theirs_s, pipe = timed(lambda: diffusers_load(ckpt, pipe_config), args.repeats)
        compared = 0
        for part in ("unet", "vae", "text_encoder"):
            mine, other = getattr(ours, part).state_dict(), getattr(pipe, part).state_dict()
            other = {k.removeprefix("text_model."): v for k, v in other.items()}
            for key, tensor in mine.items():
                if not torch.equal(tensor, other[key].to(tensor.dtype)):
                    print(f"MISMATCH {part}.{key}")
                    return 1
                compared += 1
        size = ckpt.stat().st_size / 1e9
    print(f"{args.config} ({args.precision}, {size:.2f} GB): {compared} tensors identical to diffusers' loader")
    print(f"load time, median of {args.repeats}: ours {ours_s:.2f} s, diffusers from_single_file {theirs_s:.2f} s, "
          f"ratio {ours_s / theirs_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
