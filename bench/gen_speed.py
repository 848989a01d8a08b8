"""Our generator against diffusers' StableDiffusionPipeline, same model, sampler, steps, size and batch.

    python bench/gen_speed.py                          # tiny SD1 on the CPU, 64x64, 20 steps
    python bench/gen_speed.py --sd15 --size 512 --batch 4 --dtype fp16   # SD1.5-shaped random weights, GPU

Both sides run Euler a with CFG on the same prompts and weights and return latents; images/s is wall time
over all images (text encoding and sampling; no VAE decode), median of `--repeats` runs; TFLOP/s from
PyTorch's FLOP counter on one more run; `--json OUT` writes the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import Row, flops_of, median, peak_gib, print_table, timed, write_json  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15", action="store_true")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model = build_random("sd1" if args.sd15 else "tiny-sd1", 0)
    for module in (model.unet, model.vae, model.text_encoder):
        module.to(device, dtype).eval()
    requests = [GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, width=args.size, height=args.size,
                                  steps=args.steps, cfg_scale=7.0, seed=1000 + i, sampler="euler_a")
                for i in range(args.batch)]
    pipe = diffusers_pipeline(model, device, dtype)
    sides = {"diffusers": lambda: pipe([PROMPT] * args.batch, negative_prompt=[NEGATIVE] * args.batch,
                                       height=args.size, width=args.size, num_inference_steps=args.steps,
                                       guidance_scale=7.0, output_type="latent"),
             "ours": lambda: generate(model, requests, device=device, batch_size=args.batch, output="latents")}
    rows = []
    for name, call in sides.items():
        seconds = median(timed(call, args.repeats, 1, device))
        peak = peak_gib(device)
        rows.append(Row(name, args.batch / seconds, "images", flops_of(call) / seconds / 1e12, peak))
    title = (f"generation: {'SD1.5-shaped' if args.sd15 else 'tiny SD1'}, {args.size}px, {args.steps} steps Euler a, "
             f"CFG 7, batch {args.batch}, {args.dtype}, {device}")
    print_table(title, rows, baseline="diffusers")
    write_json(args.json, title, vars(args) | {"json": None}, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
