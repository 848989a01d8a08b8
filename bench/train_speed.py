"""Our training step against a plain diffusers loop, same model, batch, precision and attention, one run.

    python bench/train_speed.py                  # tiny SD1 model on the CPU, 64x64 px
    python bench/train_speed.py --sd15 --batch 8 --precision bf16 --size 512   # SD1.5-shaped, random weights, GPU

Both sides start from identical weights and cached latents (as with cache_latents) and encode the captions
with the frozen text encoder every step. "ours" is `Trainer.step` (noise, timesteps, loss weighting, clipping,
scheduler, progress bookkeeping); "plain" is the loop of diffusers' training examples: forward, MSE, backward,
AdamW step. Reports samples/s, TFLOP/s (PyTorch's FLOP counter on one step), peak GPU memory and the
ratio ours/plain; `--json OUT` writes the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import Row, flops_of, median, peak_gib, print_table, timed, write_json  # noqa: E402
from library.data.batch import Batch  # noqa: E402
from library.models.sd_model import SDModel  # noqa: E402
from library.tiny import build_random  # noqa: E402


def build_model(sd15: bool, seed: int = 0) -> SDModel:
    return build_random("sd1" if sd15 else "tiny-sd1", seed)


def make_batch(batch: int, size: int, device) -> Batch:
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(batch, 4, size // 8, size // 8, generator=gen).to(device)
    captions = ["sks girl, 1girl, solo, long hair, smile, looking at viewer, outdoors"] * batch
    return Batch(captions=captions, loss_weights=torch.ones(batch), latents=latents)


def make_trainer(model: SDModel, precision: str, steps: int, lr: float = 1e-6):
    """A Trainer as run.py sets one up (AdamW, constant LR, frozen text encoder) for `steps` optimizer steps;
    `precision` is accelerate's mixed_precision (no, bf16, fp16)."""
    from accelerate import Accelerator

    from library.sampling.schedule import alphas_cumprod
    from library.training.loop import Trainer, TrainSettings
    from library.training.lr_schedules import make_lr_scheduler
    from library.training.optimizers import make_optimizer

    acc = Accelerator(mixed_precision=precision)
    model.unet.to(acc.device).train()
    model.text_encoder.to(acc.device).requires_grad_(False).eval()
    model.vae.to(acc.device).requires_grad_(False).eval()  # where a run keeps it; unused with cached latents
    optimizer, _ = make_optimizer("AdamW", [{"params": list(model.unet.parameters()), "lr": lr}], lr, {})
    scheduler = make_lr_scheduler(optimizer, "constant", total_steps=steps)
    model.unet, optimizer = acc.prepare(model.unet, optimizer)
    return Trainer(accelerator=acc, model=model, data=None, optimizer=optimizer, lr_scheduler=scheduler,
                   settings=TrainSettings(seed=0, max_steps=steps), alphas_cumprod=alphas_cumprod(model.config.scheduler))


def ours(model: SDModel, batch: Batch, precision: str, steps: int, warmup: int):
    """(the step, its device) of our Trainer."""
    trainer = make_trainer(model, precision, steps + warmup + 1)
    return (lambda: trainer.step([batch])), str(trainer.device)


def plain(model: SDModel, batch: Batch, precision: str, steps: int, warmup: int):
    """(the step, its device) of the loop in diffusers' training examples."""
    from diffusers import DDPMScheduler

    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet, te, tok = model.unet.to(device).train(), model.text_encoder.to(device).eval(), model.tokenizer
    te.requires_grad_(False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-6, fused=device == "cuda")
    ids = tok(batch.captions, padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids.to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        latents = batch.latents.to(device)
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (latents.shape[0],), device=device)
        with torch.no_grad():
            cond = te(ids)[0]
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            pred = unet(sched.add_noise(latents, noise, t), t, cond).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15", action="store_true", help="SD1.5-shaped model with random weights (for a GPU)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (latents are size/8)")
    parser.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args()
    rows = []
    for name, make_step in (("plain", plain), ("ours", ours)):
        model = build_model(args.sd15)  # identical weights for both
        device = "cuda" if torch.cuda.is_available() else "cpu"
        step, device = make_step(model, make_batch(args.batch, args.size, device), args.precision, args.steps,
                                 args.warmup)
        seconds = median(timed(step, args.steps, args.warmup, device))
        peak = peak_gib(device)
        flops = flops_of(step)  # one more step, counted (the same work as a timed one)
        rows.append(Row(name, args.batch / seconds, "samples", flops / seconds / 1e12, peak))
        del model, step
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    title = (f"training step: {'SD1.5-shaped' if args.sd15 else 'tiny SD1'}, batch {args.batch}, {args.size}px, "
             f"precision {args.precision}, {device}")
    print_table(title, rows, baseline="plain")
    write_json(args.json, title, vars(args) | {"json": None}, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
