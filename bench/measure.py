"""What every benchmark measures the same way: the median time of a step after warm-up (synchronized on CUDA), the
FLOPs of one call (PyTorch's FLOP counter), peak GPU memory, one table, and the JSON the benchmarks write."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch


@dataclass(frozen=True)
class Row:
    """One side of a comparison: `rate` items per second (samples, images or steps, as `unit` says)."""

    name: str
    rate: float
    unit: str
    tflops: float | None = None  # achieved TFLOP/s (FLOPs of one call x calls per second)
    peak_gib: float | None = None  # peak GPU memory; None on the CPU


def timed(step: Callable[[], object], steps: int, warmup: int, device: str) -> list[float]:
    """Seconds of each of `steps` calls of `step` after `warmup` calls; peak memory is counted from the first timed
    call."""
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def flops_of(call: Callable[[], object]) -> int:
    """FLOPs of one call of `call` (forward and backward alike), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.device(device).type == "cuda" else None


def print_table(title: str, rows: list[Row], baseline: str) -> None:
    """The rows with their ratio to row `baseline` (the plain diffusers way, or no regularization)."""
    base = next(r for r in rows if r.name == baseline)
    print(title)
    print(f"  {'':10s} {rows[0].unit + '/s':>12s} {'TFLOP/s':>9s} {'peak GiB':>9s} {'ratio':>7s}")
    for r in rows:
        tflops = f"{r.tflops:9.3f}" if r.tflops is not None else f"{'-':>9s}"
        peak = f"{r.peak_gib:9.2f}" if r.peak_gib is not None else f"{'-':>9s}"
        print(f"  {r.name:10s} {r.rate:12.2f} {tflops} {peak} {r.rate / base.rate:7.3f}")


def write_json(path: Path | None, title: str, settings: dict, rows: list[Row]) -> None:
    """The table as JSON with the machine it ran on (RESULTS.md quotes these files)."""
    if path is None:
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    data = {"title": title, "settings": settings, "rows": [asdict(r) for r in rows], "device": device,
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
