"""Batches from plans through a torch DataLoader, so image decoding runs in worker processes.

The sampler yields the plans themselves and each worker maps a plan to its batch with `load_batch`; the
DataLoader adds no batching (batch_size=None) and no randomness of its own, so 0 workers and N workers give
the same batches in the same order. With persistent workers one DataLoader per TrainingData is kept and
given each epoch's plans, so the workers survive between epochs (as kohya's persistent_data_loader_workers);
it lives as long as the process, like the training run it serves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

from torch.utils.data import DataLoader, Dataset, Sampler

from .batch import Batch
from .plan import BatchPlan

if TYPE_CHECKING:  # dataset.py re-exports iterate_batches, so it imports this module
    from .dataset import TrainingData

_persistent: dict[tuple[int, int], tuple[DataLoader, _Plans]] = {}  # (id(data), workers); holds data alive


class _Plans(Sampler):
    """Yields the current plans; `plans` is replaced between epochs (the sampler runs in the main process)."""

    def __init__(self) -> None:
        self.plans: list[BatchPlan] = []

    def __iter__(self) -> Iterator[BatchPlan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)


class _Batches(Dataset):
    def __init__(self, data: TrainingData) -> None:
        self.data = data

    def __getitem__(self, plan: BatchPlan) -> Batch:
        return self.data.load_batch(plan)


def _unchanged(batch: Batch) -> Batch:
    return batch


def iterate_batches(data: TrainingData, plans: list[BatchPlan], num_workers: int,
                    persistent: bool = False) -> Iterator[Batch]:
    """The batches of `plans`, in order. Workers are capped at the CPU count; 0 loads in this process."""
    workers = max(0, min(num_workers, os.cpu_count() or 1))
    keep = persistent and workers > 0
    key = (id(data), workers)
    if keep and key in _persistent:
        loader, sampler = _persistent[key]
    else:
        sampler = _Plans()
        loader = DataLoader(_Batches(data), batch_size=None, sampler=sampler, num_workers=workers,
                            collate_fn=_unchanged, persistent_workers=keep)
        if keep:
            _persistent[key] = (loader, sampler)
    sampler.plans = list(plans)
    return iter(loader)
