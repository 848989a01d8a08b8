"""Command line of similarity.py: compare models to a base, optionally all pairs, and write JSON/CSV/PNG."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..errors import run_reporting_user_errors
from .blocks import BLOCK_SETS, DEFAULT_SEED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="similarity.py",
        description="The reference model-similarity calculator: how close each OTHER model's UNet self-attention "
                    "is to BASE's on a fixed random input, in percent (100 = identical).")
    parser.add_argument("base", type=Path, help="base model: .safetensors, .ckpt or a diffusers folder")
    parser.add_argument("others", type=Path, nargs="+", metavar="other", help="models to compare with the base")
    parser.add_argument("--blocks", choices=list(BLOCK_SETS), default="reference",
                        help="reference: OUT03-OUT10 as the reference tool (default); extended: IN01-IN08, MID "
                             "and OUT03-OUT11, with a per-block table")
    parser.add_argument("--matrix", action="store_true",
                        help="also compare every ordered pair; in row i model i is the base")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write results (and the matrix) as JSON")
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write base-vs-other results, one row per model")
    parser.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="heatmap of the full matrix (implies --matrix), with a dendrogram for 3+ models")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random-input seed (default {DEFAULT_SEED})")
    behaviour = parser.add_argument_group(
        "behaviour", "compare what the models do instead of their weights: each model's noise predictions for "
                     "single-word prompts on fixed inputs, against the base's (the training's drift meter)")
    behaviour.add_argument("--behaviour", action="store_true", help="behaviour distance per word instead of weights")
    behaviour.add_argument("--words", type=Path, metavar="FILE",
                           help="word list: a tag CSV, a `word count` list or a caption folder (default: 16 common "
                                "Danbooru tags)")
    behaviour.add_argument("--word-count", type=int, default=16, metavar="N", help="the N most frequent words (16)")
    behaviour.add_argument("--size", type=int, metavar="PX", help="probe image size (default: the base's resolution)")
    behaviour.add_argument("--clip-skip", type=int, metavar="N", help="A1111's Clip skip for the prompts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; a UserError prints its message and gives exit status 2."""
    return run_reporting_user_errors(lambda: run(build_parser().parse_args(argv)), status=2, prog="similarity.py")


def run(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text

    if args.behaviour:
        return run_behaviour(args)
    from .compare import compare_files
    from .report import format_matrix, format_table, to_csv, to_json

    report = compare_files(args.base, args.others, args.blocks, args.seed, matrix=args.matrix or bool(args.plot))
    for warning in report.warnings:
        print(f"similarity.py: warning: {warning}", file=sys.stderr)
    print(format_table(report, per_block=args.blocks == "extended"))
    if report.matrix is not None:
        print("\n" + format_matrix(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(to_json(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.csv:
        atomic_write_text(args.csv, to_csv(report))
        print(f"wrote {args.csv}")
    if args.plot:
        from .plot import write_heatmap
        write_heatmap(args.plot, [m.name for m in report.models], report.matrix)
        print(f"wrote {args.plot}")


def run_behaviour(args: argparse.Namespace) -> None:
    from ..atomic import atomic_write_text
    from ..errors import UserError
    from .behaviour import COMMON_WORDS, compare_behaviour

    if args.matrix or args.plot or args.csv or args.blocks != "reference":
        raise UserError("--behaviour compares each model with the base; --matrix, --plot, --csv and --blocks are "
                        "for the weight comparison")
    if args.word_count < 1:
        raise UserError(f"--word-count must be at least 1, got {args.word_count}")
    if args.words:
        from ..regularization.wordfreq import load_word_list
        words = load_word_list(args.words).words[:args.word_count]
    else:
        words = COMMON_WORDS[:args.word_count]
    report = compare_behaviour(args.base, args.others, words, args.size, args.clip_skip)
    print(report.table())
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
