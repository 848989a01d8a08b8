"""The skeleton the class and word-frequency modes share: a folder of images 0 … count−1 that a rerun completes.

Image i has seed base + i. A rerun keeps the images a previous run finished (the mode says which), takes the
base seed from them, generates only the missing ones, batch by batch, and saves each with its caption before
the mode records it, so an interruption loses one batch at most.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from ..errors import UserError
from ..sampling.infotext import ModelIdentity
from ..sampling.noise import resolve_seed
from ..sampling.request import GenerationRequest
from .outputs import image_path, save_image
from .txt2img import DEFAULT_REQUEST, open_model, override, pick_device

if TYPE_CHECKING:
    from ..models.sd_model import SDModel
    from ..sampling.generate import GeneratedImage

Finished = Mapping[int, tuple[Path, int]]  # index -> (file, seed) of the images already made


@dataclass(frozen=True)
class SavedImage:
    """An image of the set whose PNG and caption are written: what a mode may record of it."""

    index: int
    prompt: str
    file: Path
    seed: int
    model_hash: str | None


def required_count(args: argparse.Namespace) -> int:
    if args.count is None or args.count < 1:
        raise UserError("--count N (at least 1) is required with --class_prompt and --wordfreq")
    return args.count


def base_seed(given: int | None, done: Finished) -> int:
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


def complete_set(args: argparse.Namespace, count: int, finished: Finished,
                 prepare: Callable[[int], Sequence[str]],
                 saved: Callable[[SavedImage], None] | None = None) -> list[Path]:
    """Generate the images of 0 … count−1 not in `finished` into --outdir; returns the PNGs written.

    `prepare(base seed)` readies the folder for the run and gives the prompt of each index, which is also
    its caption; `saved` is called after each image's files are written."""
    seed = base_seed(args.seed, finished)
    prompts = prepare(seed)
    request = override(DEFAULT_REQUEST, vars(args))
    todo = {i: replace(request, prompt=prompts[i], seed=seed + i, n_images=1)
            for i in range(count) if i not in finished}
    if not todo:
        return []
    model = open_model(args.model, args.vae)
    identity, folder = ModelIdentity.of_file(args.model), Path(args.outdir)
    written = []
    for i, result in _generate_indexed(model, todo, identity, args):
        path = save_image(result, image_path(folder, i, result.seed), caption=prompts[i])
        if saved is not None:
            saved(SavedImage(i, prompts[i], path, result.seed, identity.hash))
        written.append(path)
    return written


def _generate_indexed(model: SDModel, requests: Mapping[int, GenerationRequest], identity: ModelIdentity,
                      args: argparse.Namespace) -> Iterator[tuple[int, GeneratedImage]]:
    """(index, image) for each request, generated batch by batch so an interruption loses one batch at most."""
    from ..sampling.generate import generate

    device = pick_device(args.device)
    for part in _chunks(sorted(requests), args.batch_size):
        results = generate(model, [requests[i] for i in part], device=device, batch_size=args.batch_size,
                           progress=True, identity=identity)
        yield from zip(part, results)


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(size, 1)):
        yield list(items[start:start + size])
