"""Training throughput with self-generated regularization (the Certain method) against none, one run.

    python bench/reg_speed.py                    # tiny SD1 model on the CPU, 64x64 px, 1:4
    python bench/reg_speed.py --every 4          # the same images, generated 4 at a time every 4th step
    python bench/reg_speed.py --sd15 --batch 8 --precision bf16   # SD1.5-shaped, random weights, 512 px, GPU

One `Trainer` (as bench/train_speed.py builds it: cached latents, frozen text encoder) times optimizer steps
alternately without a stream and with a `SelfGeneratedStream`, in blocks of `--every` steps, so both sides see
the same machine state and the reg side always covers whole schedule cycles. The reg side does what the loop
does: ask the stream for its batches (the current weights generate `ratio` x batch single-word images, Euler a,
CFG, at the training size), then step over training and regularization batches together. Beside the times it
prints the arithmetic bound (the FLOPs of a reg step over a plain one) and the generation's images/s inside
training against `generate()` alone at the same settings (target: at least 90%); `--json OUT` writes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import Row, flops_of, median, print_table, timed, write_json  # noqa: E402
from bench.train_speed import build_model, make_batch, make_trainer  # noqa: E402
from library.regularization.sampler import WordSampler  # noqa: E402
from library.regularization.stream import GenerationSettings, RegMix, SelfGeneratedStream  # noqa: E402
from library.regularization.wordfreq import words_from_texts  # noqa: E402

PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # our names -> accelerate's mixed_precision


def make_stream(batch, size: int, args) -> SelfGeneratedStream:
    """Words from the bench caption's tags, drawn by frequency, as reg_word_list = "captions" would give them."""
    words = words_from_texts(batch.captions, "the bench captions")
    mix = RegMix(ratio=args.ratio, every_n_steps=args.every)
    settings = GenerationSettings(width=size, height=size, steps=args.reg_steps, cfg_scale=args.cfg)
    return SelfGeneratedStream(WordSampler(words, seed=0), mix, settings, seed=0, train_images_per_step=len(batch))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15", action="store_true", help="SD1.5-shaped model with random weights (for a GPU)")
    parser.add_argument("--batch", type=int, default=4, help="training images per step")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 64, 512 with --sd15)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    parser.add_argument("--reg-steps", type=int, default=20, help="sampling steps of each generated image (Euler a)")
    parser.add_argument("--cfg", type=float, default=7.0, help="CFG scale of the generated images (1: no uncond pass)")
    parser.add_argument("--ratio", type=float, default=0.25, help="regularization images per training image")
    parser.add_argument("--every", type=int, default=1, help="reg_every_n_steps: generate in batches every N steps")
    parser.add_argument("--steps", type=int, default=16, help="timed optimizer steps per side (rounded up to --every)")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args()
    size = args.size or (512 if args.sd15 else 64)
    cuda = torch.cuda.is_available()
    rounds = -(-args.steps // args.every)
    trainer = make_trainer(build_model(args.sd15), PRECISIONS[args.precision], steps=2 * (rounds + 1) * args.every)
    batch = make_batch(args.batch, size, trainer.device)
    stream = make_stream(batch, size, args)
    reg_steps = 0  # the stream's own step count: its schedule must not see the plain side's steps

    def plain_step():
        trainer.step([batch])

    def reg_step():
        nonlocal reg_steps
        trainer.step([batch, *stream.batches_for_step(trainer.context, reg_steps)])
        reg_steps += 1

    seconds, peak = {"none": 0.0, "reg": 0.0}, {"none": 0.0, "reg": 0.0}
    for round_ in range(rounds + 1):  # round 0 warms up both sides and is not counted
        for name, step in (("none", plain_step), ("reg", reg_step)):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(args.every):
                step()
            if cuda:
                torch.cuda.synchronize()
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated() / 2**30)
            if round_ > 0:
                seconds[name] += time.perf_counter() - start
        if round_ == 0:
            warm_seconds, warm_images = stream.generation_seconds, stream.images_made
    steps = rounds * args.every
    generation, images = stream.generation_seconds - warm_seconds, stream.images_made - warm_images
    flops = {name: flops_of(lambda: [step() for _ in range(args.every)]) / args.every
             for name, step in (("none", plain_step), ("reg", reg_step))}  # one more block each, counted
    standalone = standalone_generation(trainer, stream, args)

    device = "cuda" if cuda else "cpu"
    title = (f"training with regularization: {'SD1.5-shaped' if args.sd15 else 'tiny SD1'}, batch {args.batch}, "
             f"{size}px, precision {args.precision}, {device}; {args.ratio:g} generated images per training image, "
             f"every {args.every} step(s), {args.reg_steps} Euler a steps, CFG {args.cfg:g}; {steps} timed steps")
    rows = [Row(name, steps / seconds[name], "steps", flops[name] * steps / seconds[name] / 1e12,
                peak[name] if cuda else None) for name in ("none", "reg")]
    print_table(title, rows, baseline="none")
    time_ratio, flop_ratio = seconds["reg"] / seconds["none"], flops["reg"] / flops["none"]
    print(f"  reg steps take {time_ratio:.2f}x as long; their FLOPs are {flop_ratio:.2f}x: time/FLOPs "
          f"{time_ratio / flop_ratio:.2f} (above 1: overhead beyond the arithmetic)")
    if images:
        share = images / generation / standalone
        print(f"  generation inside training: {images / generation:.2f} images/s; standalone at the same settings "
              f"{standalone:.2f} images/s ({share:.0%}; target >= 90%)")
    else:
        print("  generation: none due in the timed steps")
    write_json(args.json, title, vars(args) | {"json": None, "time_ratio": time_ratio, "flop_ratio": flop_ratio,
                                               "generation_images_per_s": images / generation if images else None,
                                               "standalone_images_per_s": standalone}, rows)
    return 0


def standalone_generation(trainer, stream, args) -> float:
    """Images/s of generate() alone on the trained weights, the same settings and batch as the stream's."""
    from library.sampling.generate import generate

    count = max(1, round(args.ratio * args.batch * args.every))
    requests = [stream.generation.request("1girl", 100 + i) for i in range(count)]
    ctx = trainer.context
    device = str(ctx.device)

    def call():
        with ctx.sampling_model() as model:
            generate(model, requests, device=ctx.device, batch_size=count, output="latents", dtype=ctx.dtype)

    return count / median(timed(call, 3, 1, device))


if __name__ == "__main__":
    sys.exit(main())
