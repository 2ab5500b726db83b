"""The user's torch ``Dataset`` through a ``DataLoader``: files read lazily by worker processes, sharded over ranks
by a distributed sampler, and resumable mid-epoch at the exact sample a checkpoint reached."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Subset

from scaletrain.contract.errors import ConfigError


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
        start_method: str = "forkserver",
    ) -> None:
        self.batch_size, self.seed, self.start_method = batch_size, seed, start_method
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
            multiprocessing_context=worker_context(start_method, dataset, num_workers),
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
        batches = started(self.loader, self.start_method, "train_data")
        if self.sampler is None:
            batches = itertools.islice(batches, skip, None)
        for batch in itertools.islice(batches, self.steps - skip):
            yield tuple(batch)


class EvaluationBatches:
    """This rank's share of a validation set (samples rank, rank + N, ...: each scored once over all ranks), in
    chunks; its workers start at the first validation and stay for the next ones."""

    def __init__(
        self, dataset: Dataset, chunk: int, rank: int, world_size: int, num_workers: int, start_method: str
    ) -> None:
        self.start_method = start_method
        shard = Subset(dataset, range(rank, len(dataset), world_size))
        self.loader = DataLoader(
            shard,
            batch_size=chunk,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            multiprocessing_context=worker_context(start_method, dataset, num_workers),
        )

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for chunk in started(self.loader, self.start_method, "val_data"):
            yield tuple(chunk)


def worker_context(start_method: str, dataset: Dataset, num_workers: int):
    """How the DataLoader's worker processes start: ``forkserver`` by default, never a fork of the rank itself.

    A rank runs threads (gloo's, autograd's, the beacon's, the loader's own queue feeders). On Python before 3.12 a
    fork taken while one of them holds the interpreter's thread-state lock leaves the child blocked on it forever
    (CPython gh-112275; seen here as a validation that never ended). A fork server is a clean single-threaded
    process started once per rank, with torch and the dataset's module imported, so each worker forks from it
    cheaply; ``spawn`` starts every worker from scratch; ``fork`` is the old way (fastest, copy-on-write memory).
    """
    if num_workers == 0:
        return None
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":  # the training and the validation data's modules: the server is one per rank
        _PRELOAD.add(type(dataset).__module__)
        context.set_forkserver_preload(sorted(_PRELOAD))  # read when the server starts (the first loader's start)
    return context


_PRELOAD = {"torch"}  # what this rank's fork server imports once, for every worker it forks


def started(loader: DataLoader, start_method: str, key: str) -> Iterator[Any]:
    """``iter(loader)``, which starts (or wakes) its workers; a dataset that cannot be pickled to them (not under
    ``fork``) ends in a sentence naming the fixes."""
    try:
        return iter(loader)
    except (AttributeError, TypeError, pickle.PicklingError) as exc:
        if start_method == "fork" or "pickle" not in str(exc):
            raise
        raise ConfigError(
            f"workload.{key} cannot be sent to its DataLoader workers under workload.worker_start_method="
            f"{start_method} ({exc}); make the dataset picklable (no lambdas or open handles in it), or use "
            "workload.worker_start_method=fork or workload.num_workers=0."
        ) from None
