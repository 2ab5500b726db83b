"""The user's ``tf.data.Dataset`` under a tf.distribute strategy: shuffled per epoch with a seed, batched to the
global batch, sharded by the strategy (each process keeps its part of every batch), prefetched, and resumable
mid-epoch at the exact batch a checkpoint reached.

The epochs run as ONE iterator (a seeded shuffle per epoch, chained in the pipeline), not one per epoch: a new
``experimental_distribute_dataset`` iterator costs its start-up (~50 ms), and letting the exhausted one go blocked
the loop for 0.6-7 s on a busy 2-core host (tf.data shutting the iterator down), some 20 ms per step of a 64-step
epoch; and the next epoch's shuffle buffer now fills in the background while the last steps of this one compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scaletrain.contract.errors import ConfigError
from scaletrain.rank.strategies.tf_base import import_tensorflow

tf = import_tensorflow()
from tensorflow.python.data.util import structure  # noqa: E402  (flat types and shapes for the raw shuffle op)

_MAXINT32 = 2**31 - 1  # as tf.random's seeds are truncated


def _sharded(dataset: Any) -> Any:
    """Shard by data, not by file: every process reads the pipeline and keeps its replicas' rows of each batch, so
    any source (files, generators, tensors) splits evenly."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class DatasetBatches:
    """Global batches of an (inputs, targets) dataset, as the strategy distributes them to its replicas.

    ``epochs``: where the stream may end (the run's last epoch + 1); None reads on without end."""

    def __init__(
        self,
        dataset: Any,
        strategy: Any,
        global_batch_size: int,
        seed: int,
        shuffle_buffer: int,
        steps_per_epoch: int | None = None,
        epochs: int | None = None,
    ) -> None:
        self.dataset, self.strategy, self.global_batch_size = dataset, strategy, global_batch_size
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        if steps_per_epoch is None:
            rows = int(dataset.cardinality())
            if rows < 0:  # INFINITE (-1) or UNKNOWN (-2), e.g. after filter()
                raise ConfigError(
                    "the training tf.data.Dataset does not know its length (after filter() or from a generator); "
                    "set workload.steps_per_epoch to the number of global batches per epoch."
                )
            steps_per_epoch = rows // global_batch_size
        if steps_per_epoch < 1:
            raise ConfigError(
                f"the training data holds fewer rows than one global batch of {global_batch_size}; use a smaller "
                "train.global_batch_size or more data."
            )
        self.steps = steps_per_epoch
        self.epochs = epochs
        self._stream: Any = None  # the distributed iterator over every epoch from where it started
        self._next: tuple[int, int] | None = None  # the (epoch, step) of the stream's next batch

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """The distributed batches of ``epoch`` without the first ``skip``: the same order on every run.

        Read on from the one stream when it stands at (epoch, skip), as it does when the last epoch was read to its
        end; otherwise (the first epoch of a run, a resume) a new stream starts there. One reader at a time."""
        if self._next != (epoch, skip):
            self._stream = self._iterator(self.pipeline(epoch, skip))
            self._next = (epoch, skip)
        return self._read(epoch, skip)

    def _iterator(self, batches: Any) -> Iterator[Any]:
        """The strategy's distributed iterator; with a single replica on the CPU, the plain one: ``strategy.run``
        takes its batch as it is, and the distributed iterator's multi-device prefetcher (a function dispatched per
        batch) only made each batch wait 1-2 ms longer on a busy 2-core host (benchmarks/RESULTS.md, issue 16)."""
        devices = self.strategy.extended.worker_devices
        if self.strategy.num_replicas_in_sync == 1 and "CPU" in devices[0].upper():
            with tf.device(devices[0]):
                return iter(batches)
        return iter(self.strategy.experimental_distribute_dataset(batches))

    def _read(self, epoch: int, skip: int) -> Iterator[Any]:
        stream = self._stream
        for step in range(skip, self.steps):
            batch = next(stream, None)
            if batch is None:  # past the last epoch the stream was built for
                self._stream = self._next = None
                return
            self._next = (epoch, step + 1) if step + 1 < self.steps else (epoch + 1, 0)
            yield batch

    def pipeline(self, epoch: int, skip: int = 0) -> Any:
        """The global batches from step ``skip`` of ``epoch`` on, through every later epoch (up to ``epochs``):
        epoch e is ``dataset.shuffle(shuffle_buffer, seed=seed + e, reshuffle_each_iteration=False)``, batched,
        its first ``steps`` batches; sharded by data and prefetched."""
        global_part = tf.compat.v1.random.get_seed(1)[0]  # the graph-level half of every shuffle's seed pair
        dataset, buffer, batch, steps = self.dataset, self.shuffle_buffer, self.global_batch_size, self.steps

        def one_epoch(e: Any) -> Any:
            ordered = _shuffled(dataset, buffer, global_part, tf.math.floormod(self.seed + e, _MAXINT32))
            return ordered.batch(batch, drop_remainder=True).take(steps)

        last = self.epochs
        epochs = tf.data.Dataset.counter(epoch) if last is None else tf.data.Dataset.range(epoch, last)
        batches = epochs.flat_map(one_epoch).skip(skip)
        return _sharded(batches.prefetch(tf.data.AUTOTUNE))


def _shuffled(dataset: Any, buffer: int, global_part: int, op_seed: Any) -> Any:
    """``dataset.shuffle(buffer, seed=op_seed, reshuffle_each_iteration=False)`` for an op seed that is a tensor
    (the epoch's, inside the pipeline): the seed pair tf.random would make of it (``get_seed``, whose Python
    comparison fails on a tensor when the global seed is 0), hence the same order as the eager call."""
    seed2 = op_seed if global_part else tf.where(op_seed == 0, tf.constant(_MAXINT32, tf.int64), op_seed)
    spec = dataset.element_spec
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(dataset),
        buffer_size=tf.constant(buffer, tf.int64),
        seed=tf.constant(global_part, tf.int64),
        seed2=seed2,
        seed_generator=tf.raw_ops.DummySeedGenerator(),
        output_types=structure.get_flat_tensor_types(spec),
        output_shapes=structure.get_flat_tensor_shapes(spec),
        reshuffle_each_iteration=False,
    )
    return tf.data.experimental.from_variant(variant, spec)


def evaluation_batches(dataset: Any, strategy: Any, global_batch_size: int) -> Iterator[Any]:
    """Every row of a validation dataset once, in global batches (the last may be partial) over the replicas."""
    batches = dataset.batch(global_batch_size).prefetch(tf.data.AUTOTUNE)
    yield from strategy.experimental_distribute_dataset(_sharded(batches))
