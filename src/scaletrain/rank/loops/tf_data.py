"""Which samples each replica trains on, step by step: pure NumPy, identical on every process of a job."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


class ReplicaBatches:
    """Per-step index batches for every replica, laid out as DistributedSampler lays out ranks.

    Each epoch is a fresh permutation seeded by (seed, epoch), padded by wrapping around to a multiple of the
    replica count; replica r takes every R-th index from r on, then cuts its share into batches of
    global_batch_size / R. Every process computes the whole table and feeds only its own replicas' rows.
    """

    def __init__(self, num_samples: int, global_batch_size: int, num_replicas: int, seed: int) -> None:
        if global_batch_size % num_replicas:
            raise ValueError(f"global batch {global_batch_size} does not split over {num_replicas} replicas")
        self.num_samples = num_samples
        self.num_replicas = num_replicas
        self.batch_size = global_batch_size // num_replicas
        self.per_replica = math.ceil(num_samples / num_replicas)
        self.seed = seed

    def __len__(self) -> int:
        return math.ceil(self.per_replica / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """(replicas, samples per replica) indices of ``epoch``."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        padded = np.resize(perm, self.per_replica * self.num_replicas)  # repeats from the start, as the sampler does
        return padded.reshape(self.per_replica, self.num_replicas).T

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[np.ndarray]:
        """(replicas, batch) index arrays of ``epoch``, leaving out the first ``skip`` (trained before a resume)."""
        order = self.order(epoch)
        for start in range(skip * self.batch_size, self.per_replica, self.batch_size):
            yield order[:, start : start + self.batch_size]
