"""Write a captioned world data set: `python -m library.world.make OUT --count N --seed S`.

OUT/000000.png + 000000.txt (Danbooru-style tags, in the usual tagger order) for each figure: sd-scripts'
fine-tune layout (`train_data_dir = OUT` with `caption_extension = ".txt"`, or `in_json` after its tagging step).
Figure i depends only on (seed, i), so a larger count extends a set and an interrupted run is simply run again:
images already written with their caption are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import run_reporting_user_errors
from ..sample_data import check_target, write_png
from .figures import draw_figure, tags
from .sampling import figure_at

MARKER = ".certain-world"


def write_world(out_dir: Path, count: int, seed: int = 0, progress: bool = False) -> int:
    """Write figures 0..count-1 that are not there yet; returns how many were written."""
    root = Path(out_dir).absolute()
    check_target(root, MARKER, "world data set")
    atomic_write_text(root / MARKER, "Written by `python -m library.world.make`; it may overwrite its files.\n")
    from tqdm import tqdm

    written = 0
    for index in tqdm(range(count), desc="figures", disable=not progress):
        image, caption = root / f"{index:06d}.png", root / f"{index:06d}.txt"
        if image.is_file() and caption.is_file():
            continue
        fig = figure_at(seed, index)
        write_png(image, draw_figure(fig))
        atomic_write_text(caption, ", ".join(tags(fig)))  # last: a caption means its image is whole
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m library.world.make", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, metavar="OUT", help="new or empty folder, or an earlier world set")
    parser.add_argument("--count", type=int, required=True, help="how many figures (figure i is the same for any count)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")

    def work() -> None:
        written = write_world(args.out_dir, args.count, args.seed, progress=True)
        print(f"{args.out_dir}: {written} figures written, {args.count - written} already there (seed {args.seed}).")

    return run_reporting_user_errors(work, status=1)


if __name__ == "__main__":
    sys.exit(main())
