"""The user's torch ``Dataset`` through a ``DataLoader``: files read lazily by worker processes, sharded over ranks
by a distributed sampler, and resumable mid-epoch at the exact sample a checkpoint reached."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Subset

from scaletrain.errors import ConfigError


class ResumableSampler(DistributedSampler):
    """DistributedSampler's shard and per-epoch shuffle, able to start an epoch part-way (after a resume)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


class LoaderBatches:
    """Per-rank batches of a map-style or iterable ``Dataset``; every batch full (an epoch's remainder is left out).

    An ``IterableDataset`` shards itself (torch's convention: by rank and ``get_worker_info()``) and needs
    ``steps_per_epoch``; resuming one skips the first batches by reading them.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        num_workers: int,
        pin_memory: bool,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.batch_size, self.seed = batch_size, seed
        iterable = isinstance(dataset, IterableDataset)
        self.sampler = None if iterable else ResumableSampler(dataset, world_size, rank, seed)
        self.generator = torch.Generator()  # the workers' seeds: drawn from here, never from the global RNG
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
            drop_last=True,
            generator=self.generator,
        )
        if steps_per_epoch is not None:
            self.steps = steps_per_epoch
        elif self.sampler is not None:
            self.steps = self.sampler.num_samples // batch_size
        else:
            raise ConfigError(
                "the training data is an IterableDataset, which has no length; set workload.steps_per_epoch to "
                "the number of batches each rank reads per epoch."
            )
        if self.steps < 1:
            raise ConfigError(
                f"the training data gives each of the {world_size} rank(s) fewer samples than one batch of "
                f"{batch_size}; use a smaller train.global_batch_size or more data."
            )

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Any, ...]]:
        """Batches of ``epoch`` without the first ``skip``: the sampler starts at the sample after them."""
        self.generator.manual_seed(self.seed + epoch)
        if self.sampler is not None:
            self.sampler.set_position(epoch, skip * self.batch_size)
            batches = iter(self.loader)
        else:
            batches = itertools.islice(iter(self.loader), skip, None)
        for batch in itertools.islice(batches, self.steps - skip):
            yield tuple(batch)


def shard_for_evaluation(dataset: Dataset, rank: int, world_size: int) -> Subset:
    """This rank's share of a validation set: samples rank, rank + N, ... (each sample scored once over all ranks)."""
    return Subset(dataset, range(rank, len(dataset), world_size))


def is_dataset(data: Any) -> bool:
    return isinstance(data, Dataset | IterableDataset)
