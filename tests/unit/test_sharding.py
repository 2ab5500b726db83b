"""Per-rank data sharding: disjoint-and-covering shards that change every epoch; resume skips exactly."""

from __future__ import annotations

import torch

from scaletrain.rank.loops.torch_data import ShardedBatches


def shard_indices(world: int, epoch: int, n: int = 10, batch: int = 2) -> list[list[int]]:
    x = torch.arange(n).float().unsqueeze(1)
    y = torch.arange(n)
    out = []
    for rank in range(world):
        batches = ShardedBatches(x, y, batch, rank, world, seed=0)
        out.append([int(i) for _, yb in batches.epoch(epoch) for i in yb])
    return out


def test_shards_cover_the_data_without_overlap():
    shards = shard_indices(world=2, epoch=0)
    assert sorted(shards[0] + shards[1]) == list(range(10))
    assert not set(shards[0]) & set(shards[1])


def test_shards_change_between_epochs_and_repeat_for_the_same_epoch():
    assert shard_indices(2, 0) != shard_indices(2, 1)
    assert shard_indices(2, 1) == shard_indices(2, 1)


def test_skip_resumes_mid_epoch_at_the_same_batch():
    x = torch.arange(12).float().unsqueeze(1)
    batches = ShardedBatches(x, torch.arange(12), 3, 0, 1, seed=5)
    full = [yb.tolist() for _, yb in batches.epoch(4)]
    assert [yb.tolist() for _, yb in batches.epoch(4, skip=2)] == full[2:]
    assert len(batches) == 4


def test_drop_last_leaves_out_the_partial_batch_so_every_batch_has_one_shape():
    x = torch.arange(10).float().unsqueeze(1)
    batches = ShardedBatches(x, torch.arange(10), 4, 0, 1, seed=0, drop_last=True)
    sizes = [len(yb) for _, yb in batches.epoch(0)]
    assert sizes == [4, 4] and len(batches) == 2
    assert [len(yb) for _, yb in batches.epoch(0, skip=1)] == [4]
    assert [len(yb) for _, yb in ShardedBatches(x, torch.arange(10), 4, 0, 1, seed=0).epoch(0)] == [4, 4, 2]


def test_indices_match_distributed_sampler_exactly():
    from torch.utils.data import DistributedSampler

    for n, world in ((10, 1), (10, 3), (5, 2), (3, 4), (1024, 2)):
        x = torch.zeros(n, 1)
        for rank in range(world):
            batches = ShardedBatches(x, torch.arange(n), 2, rank, world, seed=11)
            for epoch in (0, 3):
                sampler = DistributedSampler(x, num_replicas=world, rank=rank, shuffle=True, seed=11)
                sampler.set_epoch(epoch)
                assert batches.indices(epoch).tolist() == list(sampler), (n, world, rank, epoch)
