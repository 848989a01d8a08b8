"""Command line of gen_reg_images.py: `txt2img` (the default; prompt, class and word-frequency modes) and `compare`."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import run_reporting_user_errors

COMMANDS = ("txt2img", "compare")


def _settings(parser: argparse.ArgumentParser) -> None:
    """Generation settings; None means "not given" so --from_png values and mode defaults show through."""
    g = parser.add_argument_group("generation settings (A1111 txt2img)")
    g.add_argument("--vae", help="external VAE file to decode with")
    g.add_argument("--negative_prompt", help="negative prompt (A1111 syntax)")
    g.add_argument("--steps", type=int, help="sampling steps (default 20)")
    g.add_argument("--sampler", help="A1111 label or key: 'Euler a'/euler_a, Euler, 'DPM++ 2M', DDIM (default Euler a)")
    g.add_argument("--cfg_scale", type=float, help="CFG scale (default 7)")
    g.add_argument("--seed", type=int, help="seed; -1 random (default); image i of a run uses seed + i")
    g.add_argument("--width", type=int, help="width in pixels, multiple of 8 (default 512)")
    g.add_argument("--height", type=int, help="height in pixels, multiple of 8 (default 512)")
    g.add_argument("--ensd", type=int, help="A1111 eta noise seed delta, e.g. 31337 (default 0)")
    g.add_argument("--clip_skip", type=int, help="CLIP skip, 1 = last layer (default 1)")
    g.add_argument("--batch_size", type=int, default=1, help="images per UNet pass (default 1)")
    g.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gen_reg_images.py", description="A1111-exact txt2img, regularization image sets and model comparison.",
        epilog="Subcommands: txt2img (the default, may be left out) and compare; "
               "`gen_reg_images.py compare -h` lists its flags.")
    sub = parser.add_subparsers(dest="command")
    txt = sub.add_parser("txt2img", help="prompt, class (--class_prompt) or word-frequency (--wordfreq) mode")
    txt.add_argument("--model", required=True, help="checkpoint file (.safetensors/.ckpt) or diffusers folder")
    txt.add_argument("--outdir", default="outputs", help="output folder (default: outputs)")
    mode = txt.add_mutually_exclusive_group()
    mode.add_argument("--prompt", help="prompt mode: the prompt (A1111 syntax)")
    mode.add_argument("--from_png", help="prompt mode: regenerate a PNG from its infotext; given flags override it")
    mode.add_argument("--class_prompt", help="class mode: prior-preservation images + captions, resumable")
    mode.add_argument("--wordfreq", help="word-frequency mode: word list file or dataset folder, resumable")
    txt.add_argument("--n_iter", type=int, default=1, help="prompt mode: batch count (images = n_iter × batch_size)")
    txt.add_argument("--count", type=int, help="class / word-frequency mode: number of images the folder should hold")
    _settings(txt)
    cmp = sub.add_parser("compare", help="the same prompts, seeds and settings across models: grid PNG + index.html")
    cmp.add_argument("--models", nargs="+", required=True, help="checkpoints to compare (the grid's columns)")
    cmp.add_argument("--prompts", help="infotext blocks separated by blank lines (default: Comparable Analysis)")
    cmp.add_argument("--outdir", default="compare", help="output folder (default: compare)")
    cmp.add_argument("--size_override", help="WxH instead of each prompt's size (quick looks)")
    cmp.add_argument("--steps_override", type=int, help="steps instead of each prompt's steps (quick looks)")
    cmp.add_argument("--vae", help="external VAE for every model")
    cmp.add_argument("--batch_size", type=int, default=1, help="images per UNet pass (default 1)")
    cmp.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; without a subcommand it is `txt2img`."""
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["txt2img", *argv]
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a UserError prints its message and gives exit status 2."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_reporting_user_errors(lambda: run(args), status=2, prog="gen_reg_images.py")


def run(args: argparse.Namespace) -> None:
    """Do one parsed command and say what it wrote."""
    if args.command == "compare":
        from .compare import run_compare
        result = run_compare(args)
        print(f"grid: {result.grid}\nhtml: {result.html}")
    else:
        from .modes import run_txt2img
        written = run_txt2img(args)
        print(f"{len(written)} image(s) written to {args.outdir}")
