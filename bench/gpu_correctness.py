"""The checks only a GPU can make, in one script: bf16, fp16 (with its loss scaler) and low-memory (gradient
checkpointing) training each lower the loss on a fixed batch with no NaN or Inf; xformers and SDPA attention agree;
the compiled U-Net agrees with the eager one. Each check prints a line and goes into the JSON; the exit status is 1
when any fails (a skipped check, xformers not installed, is marked so: not verified, not failed).

    python bench/gpu_correctness.py --json bench/results/correctness.json         # on the GPU machine
    python bench/gpu_correctness.py --quick                                       # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train_speed import build_model, make_batch, make_trainer  # noqa: E402


def fixed_batch_loss(trainer, batch) -> float:
    """The mean loss of `batch` at five fixed timesteps with fixed noise (what training on it should lower)."""
    model = trainer._plain_model()
    losses = [trainer.evaluation_loss(model, batch, torch.Generator().manual_seed(7), timestep).mean()
              for timestep in (100, 300, 500, 700, 900)]
    return float(torch.stack(losses).mean())


def training_lowers_the_loss(precision: str, checkpointing: bool, args) -> dict:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # each check its own precision, in one process
    model = build_model(args.sd15)
    if checkpointing:
        model.unet.enable_gradient_checkpointing()
    trainer = make_trainer(model, precision, args.train_steps, lr=args.lr)
    batch = make_batch(args.batch, args.size, trainer.device)
    before = fixed_batch_loss(trainer, batch)
    losses = [trainer.step([batch]).loss for _ in range(args.train_steps)]
    after = fixed_batch_loss(trainer, batch)
    finite = all(torch.isfinite(p).all() for p in trainer.model.unet.parameters()) and all(map(math.isfinite, losses))
    ok = finite and after < 0.9 * before
    return {"ok": bool(ok), "detail": f"loss on the fixed batch {before:.4f} -> {after:.4f} after {args.train_steps} "
                                      f"steps, every step finite: {finite}"}


def unet_outputs(model, args, device, dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    side = args.size // 8
    latents = torch.randn(2, 4, side, side, generator=gen).to(device, dtype)
    cond = torch.randn(2, 77, model.unet.config.cross_attention_dim, generator=gen).to(device, dtype)
    with torch.no_grad():
        return model.unet(latents, torch.tensor([500, 800], device=device), cond).sample.float()


def agreement(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> dict:
    error = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    return {"ok": error <= tolerance, "detail": f"largest difference {error:.2e} of the largest output "
                                                f"(tolerance {tolerance:g})"}


def xformers_agrees(args, device, dtype) -> dict:
    try:
        import xformers  # noqa: F401
    except ImportError:
        return {"ok": True, "skipped": True, "detail": "xformers is not installed"}
    model = build_model(args.sd15)
    model.unet.to(device, dtype).eval()
    sdpa = unet_outputs(model, args, device, dtype)
    model.unet.enable_xformers_memory_efficient_attention()
    return agreement(sdpa, unet_outputs(model, args, device, dtype), 2e-2 if dtype != torch.float32 else 1e-4)


def compiled_agrees(args, device, dtype) -> dict:
    model = build_model(args.sd15)
    model.unet.to(device, dtype).eval()
    eager = unet_outputs(model, args, device, dtype)
    start = time.perf_counter()
    model.unet = torch.compile(model.unet)
    compiled = unet_outputs(model, args, device, dtype)
    result = agreement(eager, compiled, 2e-2 if dtype != torch.float32 else 1e-4)
    result["detail"] += f"; first compiled call {time.perf_counter() - start:.1f} s"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 64 px: the script itself checked on a "
                                                             "CPU (fp16 and xformers need CUDA)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    args.sd15, args.size, args.batch = not args.quick, 64 if args.quick else 512, 4
    args.train_steps, args.lr = (30, 1e-3) if args.quick else (40, 1e-4)
    half = torch.float16 if cuda else torch.bfloat16
    checks = {"fp32 training lowers the loss": lambda: training_lowers_the_loss("no", False, args),
              "bf16 training lowers the loss": lambda: training_lowers_the_loss("bf16", False, args)}
    checks["gradient-checkpointed training (bf16) lowers the loss"] = lambda: training_lowers_the_loss("bf16", True,
                                                                                                     args)
    if cuda:
        checks |= {"fp16 training (loss scaler) lowers the loss": lambda: training_lowers_the_loss("fp16", False, args),
                   "xformers and SDPA attention agree (fp16)": lambda: xformers_agrees(args, device, half)}
    if cuda or not args.quick:
        checks["the compiled U-Net agrees with the eager one"] = lambda: compiled_agrees(args, device, half)
    results = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as error:  # noqa: BLE001 - a check that crashes is a failed check, reported as such
            results[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}"}
        gc.collect()  # a trainer holds itself in a cycle: free its weights and optimizer before the next check
        if cuda:
            torch.cuda.empty_cache()
        mark = "skip" if results[name].get("skipped") else ("ok" if results[name]["ok"] else "FAIL")
        print(f"  [{mark:4s}] {name}: {results[name]['detail']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name() if cuda else "cpu",
                                         "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                                         "checks": results}, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
