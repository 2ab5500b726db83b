"""The tf.data training stream (rank/loops/tf_dataset.py): one distributed iterator through the epochs, in the same
order as a seeded shuffle per epoch, resumable at any step."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]

tf = pytest.importorskip("tensorflow")

ROWS, BATCH, BUFFER = 40, 8, 100  # 5 steps an epoch


@pytest.fixture(scope="module")
def strategy():
    from scaletrain.rank.strategies.tf_base import import_tensorflow

    return import_tensorflow().distribute.MirroredStrategy(["/cpu:0"])


@pytest.fixture
def global_seed():
    """Set tf.random's global seed for one test; None afterwards, as the process started."""
    yield tf.random.set_seed
    tf.random.set_seed(None)


def _rows() -> tf.data.Dataset:
    x = np.arange(ROWS, dtype=np.float32)[:, None]
    return tf.data.Dataset.from_tensor_slices((x, np.arange(ROWS, dtype=np.int32)))


def _labels(batches) -> list[list[int]]:
    return [np.asarray(y).tolist() for _, y in batches]


def _per_epoch(seed: int, epoch: int) -> list[list[int]]:
    """The order of the former pipeline, one eager shuffle per epoch (checkpoints written by it resume alike)."""
    ordered = _rows().shuffle(BUFFER, seed=seed + epoch, reshuffle_each_iteration=False)
    return _labels(ordered.batch(BATCH, drop_remainder=True).take(ROWS // BATCH))


def _batches(strategy, seed: int, epochs: int | None = 4):
    from scaletrain.rank.loops.tf_dataset import DatasetBatches

    return DatasetBatches(_rows(), strategy, BATCH, seed, BUFFER, epochs=epochs)


@pytest.mark.parametrize(("graph_seed", "seed"), [(0, 0), (0, 3), (5, 0), (None, 0), (None, 7)])
def test_each_epoch_is_the_seeded_shuffle_of_that_epoch(strategy, global_seed, graph_seed, seed):
    global_seed(graph_seed)  # 0 (the default job seed) is where tf.random's get_seed fails on a tensor seed
    data = _batches(strategy, seed)
    epochs = [_labels(data.epoch(e)) for e in range(4)]
    assert epochs == [_per_epoch(seed, e) for e in range(4)]
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    assert sorted(sum(epochs[2], [])) == list(range(ROWS))  # every row once an epoch


def test_resume_at_any_step_reads_on_as_the_uninterrupted_stream(strategy, global_seed):
    global_seed(0)
    data = _batches(strategy, seed=0)
    whole = [_labels(data.epoch(e)) for e in range(3)]
    for epoch, skip in [(0, 0), (0, 3), (1, 4), (2, 1)]:
        resumed = _batches(strategy, seed=0)
        assert _labels(resumed.epoch(epoch, skip)) == whole[epoch][skip:]
        assert [_labels(resumed.epoch(e)) for e in range(epoch + 1, 3)] == whole[epoch + 1 :]


def test_the_stream_is_kept_across_epochs_and_restarted_where_it_was_left(strategy, global_seed):
    global_seed(0)
    data = _batches(strategy, seed=0)
    whole = _labels(data.epoch(0)) + _labels(data.epoch(1))
    data = _batches(strategy, seed=0)
    first = data.epoch(0)
    next(first)
    stream = data._stream
    rest = _labels(first)
    assert data.epoch(1) is not None and data._stream is stream  # read to its end: epoch 1 goes on from it
    second = data.epoch(1)
    partial = _labels([next(second), next(second)])  # left after 2 steps (a stop, max_steps)
    assert data._next == (1, 2)
    assert _labels(data.epoch(1, 1)) == whole[5 + 1 :] and data._stream is not stream  # elsewhere: a new stream
    assert rest == whole[1:5] and partial == whole[5:7]


def test_the_stream_ends_with_its_last_epoch(strategy, global_seed):
    global_seed(0)
    data = _batches(strategy, seed=0, epochs=2)
    assert [len(_labels(data.epoch(e))) for e in range(3)] == [5, 5, 0]
    unbounded = _batches(strategy, seed=0, epochs=None)
    assert [_labels(unbounded.epoch(e)) for e in range(3)] == [_per_epoch(0, e) for e in range(3)]
