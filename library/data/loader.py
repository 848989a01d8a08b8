"""Batches from plans through a torch DataLoader, so image decoding runs in worker processes.

The DataLoader's sampler yields the plans themselves and each worker maps a plan to its batch with `load_batch`; the
DataLoader adds no batching (batch_size=None) and no randomness of its own, so 0 workers and N workers give
the same batches in the same order. With persistent workers one DataLoader per TrainingData is kept and
given each epoch's plans, so the workers survive between epochs (as kohya's persistent_data_loader_workers);
it lives as long as the process, like the training run it serves.
"""

from __future__ import annotations

import os
from typing import Iterator, Protocol

from torch.utils.data import DataLoader, Dataset, Sampler

from .batch import Batch
from .plan import BatchPlan


class LoadsBatches(Protocol):
    """What the workers need of the data: `dataset.TrainingData` (which imports this module to re-export
    `iterate_batches`) has it."""

    def load_batch(self, plan: BatchPlan) -> Batch: ...


_persistent: dict[tuple[int, int], tuple[DataLoader, _PlanSampler]] = {}  # (id(data), workers); holds data alive


class _PlanSampler(Sampler):
    """The DataLoader's sampler: yields the current plans, one per batch; `plans` is replaced between epochs
    (the sampler runs in the main process)."""

    def __init__(self) -> None:
        self.plans: list[BatchPlan] = []

    def __iter__(self) -> Iterator[BatchPlan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)


class _Batches(Dataset):
    def __init__(self, data: LoadsBatches) -> None:
        self.data = data

    def __getitem__(self, plan: BatchPlan) -> Batch:
        return self.data.load_batch(plan)


def _unchanged(batch: Batch) -> Batch:
    return batch


def iterate_batches(data: LoadsBatches, plans: list[BatchPlan], num_workers: int,
                    persistent: bool = False) -> Iterator[Batch]:
    """The batches of `plans`, in order. Workers are capped at the CPU count; 0 loads in this process."""
    workers = max(0, min(num_workers, os.cpu_count() or 1))
    keep = persistent and workers > 0
    key = (id(data), workers)
    if keep and key in _persistent:
        loader, sampler = _persistent[key]
    else:
        sampler = _PlanSampler()
        loader = DataLoader(_Batches(data), batch_size=None, sampler=sampler, num_workers=workers,
                            collate_fn=_unchanged, persistent_workers=keep)
        if keep:
            _persistent[key] = (loader, sampler)
    sampler.plans = list(plans)
    return iter(loader)
