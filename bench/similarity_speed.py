"""Time the similarity of two full-size checkpoints: our lazy reader against loading both state dicts whole.

    python bench/similarity_speed.py                    # SD1.5-shaped fp16 files (~2 GB each), CPU
    python bench/similarity_speed.py --config tiny-sd1  # seconds
    python bench/similarity_speed.py --ckpt             # also as .ckpt (memory-mapped vs torch.load)
    python bench/similarity_speed.py --cold --dir /tmp/simbench  # read from disk; keep the files for reruns

It writes two random-weight checkpoints of the chosen architecture, then computes the reference similarity
both ways (`--repeats` times, median; files in the page cache, or evicted from it before each run with
`--cold`) and checks the two numbers are identical. "Plain" is what the reference tool does:
`safetensors.torch.load_file` / `torch.load` of both files, then the same math on the full dicts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_speed import timed  # noqa: E402
from library.models.sd_model import save_model  # noqa: E402
from library.similarity.blocks import block_set  # noqa: E402
from library.similarity.files import read_attention_weights  # noqa: E402
from library.similarity.probe import compare, probe_base  # noqa: E402
from library.similarity.state_dicts import similarity_of_weights  # noqa: E402
from library.tiny import build_random  # noqa: E402


def ours(a: Path, b: Path, blocks: str) -> float:
    chosen = block_set(blocks)
    return compare(probe_base(read_attention_weights(a, chosen), 114514), read_attention_weights(b, chosen)).similarity


def plain(a: Path, b: Path, blocks: str) -> float:
    if a.suffix == ".safetensors":
        from safetensors.torch import load_file
        full_a, full_b = load_file(str(a)), load_file(str(b))
    else:
        full_a, full_b = (torch.load(p, map_location="cpu", weights_only=True)["state_dict"] for p in (a, b))
    return similarity_of_weights(full_a, full_b, blocks=blocks).similarity


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the OS cache, so the next read comes from disk (Linux)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="sd1", help="shipped model config: sd1, sd2-512, tiny-sd1, ...")
    parser.add_argument("--precision", choices=["float", "fp16"], default="fp16")
    parser.add_argument("--blocks", choices=["reference", "extended"], default="reference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ckpt", action="store_true", help="also time .ckpt copies of the two models")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 on a busy machine")
    parser.add_argument("--cold", action="store_true", help="evict the files from the OS cache before each run")
    parser.add_argument("--dir", type=Path, help="keep the model files here and reuse them on the next run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    suffixes = [".safetensors", ".ckpt"] if args.ckpt else [".safetensors"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        files = {s: [folder / f"{args.config}-{args.precision}-{seed}{s}" for seed in (0, 1)] for s in suffixes}
        for seed in (0, 1):
            missing = [paths[seed] for paths in files.values() if not paths[seed].is_file()]
            model = build_random(args.config, seed) if missing else None
            for path in missing:
                save_model(model, path, precision=args.precision)
            del model
        for suffix, (a, b) in files.items():
            evicting = (lambda files=(a, b): evict(list(files))) if args.cold else None
            ours_s, ours_value = timed(lambda: ours(a, b, args.blocks), args.repeats, evicting)
            plain_s, plain_value = timed(lambda: plain(a, b, args.blocks), args.repeats, evicting)
            if ours_value != plain_value:
                print(f"MISMATCH {suffix}: ours {ours_value!r}, plain {plain_value!r}")
                return 1
            size = a.stat().st_size / 1e9
            cache = "cold" if args.cold else "warm"
            print(f"{args.config} {suffix} ({args.precision}, {size:.2f} GB each, {args.blocks} blocks, {cache} "
                  f"cache, {torch.get_num_threads()} threads): "
                  f"similarity {ours_value:.4f}% both ways")
            print(f"  median of {args.repeats}: ours {ours_s:.3f} s, plain (full load) {plain_s:.3f} s, "
                  f"ratio {ours_s / plain_s:.3f}")
            chosen = block_set(args.blocks)
            weights = [read_attention_weights(p, chosen) for p in (a, b)]
            read_s, _ = timed(lambda: [read_attention_weights(p, chosen) for p in (a, b)], args.repeats, evicting)
            math_s, _ = timed(lambda: compare(probe_base(weights[0], 114514), weights[1]), args.repeats)
            print(f"  of which: our reads of the needed tensors {read_s:.3f} s, "
                  f"the math (the same both ways) {math_s:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
