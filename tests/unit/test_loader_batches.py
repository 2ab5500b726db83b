"""The DataLoader path: every rank's batches, per epoch, and a resumed epoch that continues at the exact sample."""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from scaletrain.contract.errors import ConfigError
from scaletrain.rank.loops.torch_loader import EvaluationBatches, LoaderBatches

DATA = TensorDataset(torch.arange(100).float()[:, None], torch.arange(100))


def _epoch(batches: LoaderBatches, epoch: int, skip: int = 0) -> list[list[int]]:
    return [y.tolist() for _, y in batches.epoch(epoch, skip)]


@pytest.mark.parametrize(("num_workers", "start_method"), [(0, "forkserver"), (2, "forkserver"), (2, "fork")])
def test_ranks_split_each_epoch_and_a_resume_continues_at_the_exact_sample(num_workers, start_method):
    ranks = [LoaderBatches(DATA, 8, rank, 2, seed=5, num_workers=num_workers, pin_memory=False,
                           start_method=start_method) for rank in (0, 1)]  # fmt: skip
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


RANK_STATE = {"set_in_the_rank": False}  # set by the test in this process; a fork of it carries the change along


class WhereWorkersStart(Dataset):
    """Each item: the pid of the process that started its worker, and whether the worker inherited this process's
    memory (a fork) or imported this module afresh (a fork server's child, a spawned interpreter)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int):
        return os.getppid(), RANK_STATE["set_in_the_rank"]


def test_workers_are_not_forks_of_the_rank():
    """The rank runs threads (gloo's, the beacon's, the loader's feeders); a fork of it can block the worker forever
    (CPython gh-112275, seen as a validation that never ended). By default every worker's parent is the fork server."""
    RANK_STATE["set_in_the_rank"] = True
    try:
        for start_method in ("forkserver", "spawn", "fork"):
            batches = LoaderBatches(WhereWorkersStart(), 4, 0, 1, seed=0, num_workers=1, pin_memory=False,
                                    start_method=start_method)  # fmt: skip
            seen = {
                (int(pid), bool(inherited))
                for pids, flags in batches.epoch(0)
                for pid, inherited in zip(pids, flags, strict=True)
            }
            (parent, inherited), *_ = seen
            assert len(seen) == 1 and inherited is (start_method == "fork"), (start_method, seen)
            assert (parent == os.getpid()) is (start_method != "forkserver"), (start_method, seen)
    finally:
        RANK_STATE["set_in_the_rank"] = False


class Unpicklable(Dataset):
    def __init__(self) -> None:
        self.transform = lambda x: x  # a lambda cannot be pickled

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int):
        return self.transform(torch.tensor([float(index)]))


def test_a_dataset_that_cannot_be_pickled_is_one_sentence_naming_the_fixes():
    for start_method in ("forkserver", "spawn"):
        batches = LoaderBatches(Unpicklable(), 4, 0, 1, seed=0, num_workers=1, pin_memory=False,
                                start_method=start_method)  # fmt: skip
        with pytest.raises(ConfigError, match=f"workload.train_data cannot be sent to its DataLoader workers under "
                           f"workload.worker_start_method={start_method} .*worker_start_method=fork"):  # fmt: skip
            next(batches.epoch(0))
        with pytest.raises(ConfigError, match="workload.val_data cannot be sent"):
            next(iter(EvaluationBatches(Unpicklable(), 4, 0, 1, num_workers=1, start_method=start_method)))
    forked = LoaderBatches(Unpicklable(), 4, 0, 1, seed=0, num_workers=1, pin_memory=False, start_method="fork")
    assert len(list(forked.epoch(0))) == 2  # fork copies the dataset instead of pickling it


def test_each_rank_evaluates_its_own_share_and_the_workers_stay():
    shards = [EvaluationBatches(DATA, 16, rank, 3, num_workers=1, start_method="forkserver") for rank in range(3)]
    scored = [int(y) for shard in shards for _, ys in shard for y in ys]
    assert sorted(scored) == list(range(100))  # every sample once over the ranks
    first = [y.tolist() for _, y in shards[1]]
    assert first == [y.tolist() for _, y in shards[1]]  # the next validation: the same rows, from the same workers
    assert shards[1].loader._iterator is not None and shards[1].loader.persistent_workers
