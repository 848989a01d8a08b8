"""txt2img modes: prompt (one prompt or a PNG's infotext), class (prior preservation) and word frequency."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from ..sampling.infotext import ModelIdentity, read_infotext, request_from_infotext
from ..sampling.request import GenerationRequest
from .outputs import image_path, next_index, numbered_files, save_image
from .resumable import complete_set, required_count
from .txt2img import DEFAULT_REQUEST, open_model, override, pick_device
from .wordfreq_mode import run_wordfreq


def run_txt2img(args: argparse.Namespace) -> list[Path]:
    """Dispatch to the mode the flags ask for; returns the PNGs written."""
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.class_prompt is not None:
        return run_class(args)
    if args.wordfreq is not None:
        return run_wordfreq(args)
    return run_prompt(args)


def prompt_request(args: argparse.Namespace) -> GenerationRequest:
    """The prompt-mode request: --from_png's infotext (or the defaults) with the given flags on top."""
    if args.from_png is not None:
        if not Path(args.from_png).is_file():
            raise UserError(f"PNG not found: {args.from_png}")
        text = read_infotext(args.from_png)
        if not text:
            raise UserError(f"{args.from_png} has no A1111 infotext (PNG 'parameters' chunk)")
        base = request_from_infotext(text)
    elif args.prompt is not None:
        base = replace(DEFAULT_REQUEST, prompt=args.prompt)
    else:
        raise UserError("give --prompt, --from_png, --class_prompt or --wordfreq")
    if args.n_iter < 1:
        raise UserError(f"--n_iter must be at least 1, got {args.n_iter}")
    return replace(override(base, vars(args)), n_images=args.n_iter * args.batch_size)


def run_prompt(args: argparse.Namespace) -> list[Path]:
    """n_iter × batch_size images of one prompt, seeds seed, seed + 1, …, as `<counter>-<seed>.png`."""
    from ..sampling.generate import generate

    request = prompt_request(args)
    model = open_model(args.model, args.vae)
    results = generate(model, [request], device=pick_device(args.device), batch_size=args.batch_size,
                       progress=True, identity=ModelIdentity.of_file(args.model))
    folder, start = Path(args.outdir), next_index(Path(args.outdir))
    return [save_image(r, image_path(folder, start + n, r.seed)) for n, r in enumerate(results)]


def run_class(args: argparse.Namespace) -> list[Path]:
    """Images 0 … count−1 of the class prompt, each with it as caption; the numbered PNGs there are kept."""
    count, folder = required_count(args), Path(args.outdir)
    finished = numbered_files(folder)

    def prepare(seed: int) -> list[str]:
        """Kept images without a caption file get the class prompt as theirs, as every new image does."""
        for path, _ in finished.values():
            if not path.with_suffix(".txt").exists():
                path.with_suffix(".txt").write_text(args.class_prompt + "\n", encoding="utf-8")
        return [args.class_prompt] * count

    return complete_set(args, count, finished, prepare)
