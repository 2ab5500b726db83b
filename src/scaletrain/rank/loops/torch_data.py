"""Which samples each rank trains on, batch by batch, for data held in memory as tensors."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler


class ShardedBatches:
    """Per-rank batches of in-memory tensors; the shard and order change every epoch (DistributedSampler's)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        drop_last: bool = False,
    ):
        self.x, self.y, self.batch_size, self.drop_last = x, y, batch_size, drop_last
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.sampler = DistributedSampler(x, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)

    def __len__(self) -> int:
        """Batches per epoch; with ``drop_last`` an epoch's partial last batch is left out (every batch full)."""
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return math.ceil(len(self.sampler) / self.batch_size)

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample order for ``epoch``: DistributedSampler's, computed in torch rather than through a
        Python list (0.8 ms against 25 µs per epoch of 8,192 samples)."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.x), generator=generator)
        total = self.sampler.total_size
        if total > len(order):  # pad by repeating from the start, as DistributedSampler does
            order = torch.cat([order, order.repeat(math.ceil((total - len(order)) / len(order)))[: total - len(order)]])
        return order[self.rank : total : self.world_size]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``epoch``, leaving out the first ``skip`` (already trained before a resume)."""
        indices = self.indices(epoch)
        for start in range(skip * self.batch_size, min(len(indices), len(self) * self.batch_size), self.batch_size):
            batch = indices[start : start + self.batch_size]
            yield self.x[batch], self.y[batch]
