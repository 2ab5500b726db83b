"""The DataLoader path: every rank's batches, per epoch, and a resumed epoch that continues at the exact sample."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import IterableDataset, TensorDataset

from scaletrain.errors import ConfigError
from scaletrain.loops.torch_loader import LoaderBatches

DATA = TensorDataset(torch.arange(100).float()[:, None], torch.arange(100))


def _epoch(batches: LoaderBatches, epoch: int, skip: int = 0) -> list[list[int]]:
    return [y.tolist() for _, y in batches.epoch(epoch, skip)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_split_each_epoch_and_a_resume_continues_at_the_exact_sample(num_workers):
    ranks = [LoaderBatches(DATA, 8, rank, 2, seed=5, num_workers=num_workers, pin_memory=False) for rank in (0, 1)]
    assert len(ranks[0]) == 6  # 50 samples per rank, full batches of 8
    epoch = [_epoch(r, 1) for r in ranks]
    seen = [s for rank in epoch for batch in rank for s in batch]
    assert len(seen) == len(set(seen)) == 96  # disjoint shards, every batch full
    assert _epoch(ranks[0], 1, skip=4) == epoch[0][4:]  # resumed after 4 steps: the same remaining batches
    assert _epoch(ranks[0], 2) != epoch[0]  # another epoch, another order


def test_an_iterable_dataset_needs_steps_per_epoch_and_skips_by_reading():
    class Counting(IterableDataset):
        def __iter__(self):
            return iter((torch.tensor([float(i)]), i) for i in range(40))

    with pytest.raises(ConfigError, match="IterableDataset, which has no length; set workload.steps_per_epoch"):
        LoaderBatches(Counting(), 4, 0, 1, seed=0, num_workers=0, pin_memory=False)
    batches = LoaderBatches(Counting(), 4, 0, 1, seed=0, num_workers=0, pin_memory=False, steps_per_epoch=5)
    assert _epoch(batches, 0) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19]]
    assert _epoch(batches, 0, skip=3) == [[12, 13, 14, 15], [16, 17, 18, 19]]


def test_too_little_data_for_one_batch_is_one_sentence():
    with pytest.raises(ConfigError, match="fewer samples than one batch of 64"):
        LoaderBatches(DATA, 64, 0, 2, seed=0, num_workers=0, pin_memory=False)
