"""The user's ``tf.data.Dataset`` under a tf.distribute strategy: shuffled per epoch with a seed, batched to the
global batch, sharded by the strategy (each process keeps its part of every batch), prefetched, and resumable
mid-epoch at the exact batch a checkpoint reached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scaletrain.errors import ConfigError
from scaletrain.strategies.tf_base import import_tensorflow

tf = import_tensorflow()


def is_dataset(data: Any) -> bool:
    return isinstance(data, tf.data.Dataset)


def _sharded(dataset: Any) -> Any:
    """Shard by data, not by file: every process reads the pipeline and keeps its replicas' rows of each batch, so
    any source (files, generators, tensors) splits evenly."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class DatasetBatches:
    """Global batches of an (inputs, targets) dataset, as the strategy distributes them to its replicas."""

    def __init__(
        self,
        dataset: Any,
        strategy: Any,
        global_batch_size: int,
        seed: int,
        shuffle_buffer: int,
        steps_per_epoch: int | None = None,
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

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """The distributed batches of ``epoch`` without the first ``skip``: the same order on every run."""
        ordered = self.dataset.shuffle(self.shuffle_buffer, seed=self.seed + epoch, reshuffle_each_iteration=False)
        batches = ordered.batch(self.global_batch_size, drop_remainder=True).take(self.steps).skip(skip)
        yield from self.strategy.experimental_distribute_dataset(_sharded(batches.prefetch(tf.data.AUTOTUNE)))


def evaluation_batches(dataset: Any, strategy: Any, global_batch_size: int) -> Iterator[Any]:
    """Every row of a validation dataset once, in global batches (the last may be partial) over the replicas."""
    batches = dataset.batch(global_batch_size).prefetch(tf.data.AUTOTUNE)
    yield from strategy.experimental_distribute_dataset(_sharded(batches))
