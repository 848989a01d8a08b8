"""Our generator against diffusers' StableDiffusionPipeline, same model, sampler, steps, size and batch.

    python bench/gen_speed.py                          # tiny SD1 on the CPU, 64x64, 20 steps
    python bench/gen_speed.py --sd15 --size 512 --batch 4 --dtype fp16   # SD1.5-shaped random weights, GPU

Both sides run Euler a with CFG on the same prompts and weights and return latents; images/s is wall time
over all images (text encoding and sampling; no VAE decode), median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from library.sampling.generate import generate  # noqa: E402
from library.sampling.request import GenerationRequest  # noqa: E402
from library.tiny import build_random  # noqa: E402

PROMPT, NEGATIVE = "1girl, solo, long hair, smile, looking at viewer", "lowres, bad anatomy"


def diffusers_pipeline(model, device, dtype):
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    scheduler = EulerAncestralDiscreteScheduler.from_config(model.config.scheduler)
    pipe = StableDiffusionPipeline(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer,
                                   unet=model.unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    return pipe.to(device, dtype)


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15", action="store_true")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model = build_random("sd1" if args.sd15 else "tiny-sd1", 0)
    for module in (model.unet, model.vae, model.text_encoder):
        module.to(device, dtype).eval()
    requests = [GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, width=args.size, height=args.size,
                                  steps=args.steps, cfg_scale=7.0, seed=1000 + i, sampler="euler_a")
                for i in range(args.batch)]
    ours = timed(lambda: generate(model, requests, device=device, batch_size=args.batch, output="latents"),
                 args.repeats, device)
    pipe = diffusers_pipeline(model, device, dtype)
    theirs = timed(lambda: pipe([PROMPT] * args.batch, negative_prompt=[NEGATIVE] * args.batch, height=args.size,
                                width=args.size, num_inference_steps=args.steps, guidance_scale=7.0,
                                output_type="latent"), args.repeats, device)
    label = f"{'SD1.5-shaped' if args.sd15 else 'tiny SD1'}, {args.size}px, {args.steps} steps, batch {args.batch}, {args.dtype}, {device}"
    print(label)
    print(f"  ours     : {args.batch / ours:7.2f} images/s")
    print(f"  diffusers: {args.batch / theirs:7.2f} images/s")
    print(f"  ratio ours/diffusers: {theirs / ours:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
