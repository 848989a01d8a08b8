"""txt2img modes: prompt (one prompt or a PNG's infotext), class (prior preservation) and word frequency."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from ..errors import UserError
from ..sampling.infotext import ModelIdentity, read_infotext, request_from_infotext
from ..sampling.noise import resolve_seed
from ..sampling.request import GenerationRequest
from .outputs import image_path, next_index, numbered_files, save_image

if TYPE_CHECKING:
    from ..models.sd_model import SDModel
    from ..sampling.generate import GeneratedImage

# A1111's txt2img defaults for settings neither a flag nor a PNG gives.
DEFAULT_REQUEST = GenerationRequest(prompt="", steps=20, cfg_scale=7.0, sampler="euler_a", seed=-1)
SETTINGS = ("negative_prompt", "steps", "sampler", "cfg_scale", "seed", "width", "height", "ensd", "clip_skip")


def override(base: GenerationRequest, values: Mapping[str, object]) -> GenerationRequest:
    """`base` with every setting in `values` that is not None (flags given on the command line)."""
    return replace(base, **{k: v for k, v in values.items() if k in SETTINGS and v is not None})


def open_model(path: str, vae: str | None) -> SDModel:
    """Load a checkpoint, refusing missing files with a UserError."""
    from ..models.sd_model import load_model

    if not Path(path).exists():
        raise UserError(f"model not found: {path}")
    if vae is not None and not Path(vae).is_file():
        raise UserError(f"VAE not found: {vae}")
    return load_model(path, vae=vae)


def pick_device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(size, 1)):
        yield list(items[start:start + size])


def run_txt2img(args: argparse.Namespace) -> list[Path]:
    """Dispatch to the mode the flags ask for; returns the PNGs written."""
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.class_prompt is not None:
        return run_class(args)
    if args.wordfreq is not None:
        from .wordfreq_mode import run_wordfreq
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


def base_seed(given: int | None, done: Mapping[int, tuple[Path, int]]) -> int:
    """The seed of image 0 of a resumable set: the flag, else what the folder's files imply, else random."""
    implied = {seed - index for index, (_, seed) in done.items()}
    if len(implied) > 1:
        raise UserError(f"the numbered files in the output folder come from different base seeds {sorted(implied)}")
    if given is not None and given != -1:
        if implied and implied != {given}:
            raise UserError(f"the output folder was made with base seed {implied.pop()}, not --seed {given}; "
                            "leave --seed out to continue it, or use another --outdir")
        return given
    return implied.pop() if implied else resolve_seed(None)


def required_count(args: argparse.Namespace) -> int:
    if args.count is None or args.count < 1:
        raise UserError("--count N (at least 1) is required with --class_prompt and --wordfreq")
    return args.count


def generate_indexed(model: SDModel, requests: Mapping[int, GenerationRequest], args: argparse.Namespace,
                     ) -> Iterator[tuple[int, GeneratedImage]]:
    """(index, image) for each request, generated batch by batch so an interruption loses one batch at most."""
    from ..sampling.generate import generate

    identity, device = ModelIdentity.of_file(args.model), pick_device(args.device)
    for part in chunks(sorted(requests), args.batch_size):
        results = generate(model, [requests[i] for i in part], device=device, batch_size=args.batch_size,
                           progress=True, identity=identity)
        yield from zip(part, results)


def run_class(args: argparse.Namespace) -> list[Path]:
    """Images 0 … count−1 of the class prompt with seed base + index, each with a caption; existing ones kept."""
    count, folder = required_count(args), Path(args.outdir)
    request = override(replace(DEFAULT_REQUEST, prompt=args.class_prompt), vars(args))
    done = numbered_files(folder)
    seed = base_seed(args.seed, done)
    for path, _ in done.values():
        if not path.with_suffix(".txt").exists():
            path.with_suffix(".txt").write_text(args.class_prompt + "\n", encoding="utf-8")
    todo = {i: replace(request, seed=seed + i, n_images=1) for i in range(count) if i not in done}
    if not todo:
        return []
    model = open_model(args.model, args.vae)
    return [save_image(r, image_path(folder, i, r.seed), caption=args.class_prompt)
            for i, r in generate_indexed(model, todo, args)]
