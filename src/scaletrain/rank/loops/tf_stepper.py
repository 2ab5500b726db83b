"""The TensorFlow stepper (mirrored, tpu): a TFTask's Keras model under a tf.distribute strategy, as the driver asks.

A custom loop (``strategy.run`` in a ``tf.function``), not ``model.fit``: Keras 3's fit fails under
MultiWorkerMirroredStrategy in TF 2.21, and a loop of our own gets every feature of the training driver.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from scaletrain.contract.errors import ConfigError
from scaletrain.rank import batching, flops, metrics, precision
from scaletrain.rank.context import RunContext
from scaletrain.rank.loops import tf_dataset, tf_flops
from scaletrain.rank.loops.schedule import Schedule
from scaletrain.rank.loops.stepper import validation_figures
from scaletrain.rank.loops.tf_data import ReplicaBatches
from scaletrain.rank.loops.tf_steps import (
    Steps,
    build_optimizer,
    loss_scaled,
    restore,
    schedule_rate,
    set_precision_policy,
    tf,
    weights_state,
)
from scaletrain.rank.model_size import model_size
from scaletrain.workloads.task import TFTask, is_tf_dataset

log = logging.getLogger("scaletrain")

EVAL_CHUNK = 1024  # validation rows per replica per call


HOST_NAME_BYTES = 64  # a host name (RFC 1035 labels are at most 63 bytes)


class TFStepper:
    framework = "tensorflow"
    measures_comm = False  # the all-reduce runs inside the compiled step: TensorFlow gives no hook to time it

    def __init__(self, ctx: RunContext, task: TFTask) -> None:
        train, strategy = ctx.job.train, ctx.strategy.tf_strategy
        self.ctx, self.task = ctx, task
        self.replicas = strategy.num_replicas_in_sync
        if train.global_batch_size % self.replicas:
            raise ConfigError(
                f"train.global_batch_size={train.global_batch_size} does not split over the {self.replicas} "
                f"replicas; use a multiple of {self.replicas}."
            )
        self.global_batch_size = train.global_batch_size
        self.batch_split = batching.split(train.global_batch_size, self.replicas, train.micro_batch_size)
        if is_tf_dataset(task.train):  # the user's tf.data pipeline, distributed by the strategy
            self.data = tf_dataset.DatasetBatches(task.train, strategy, train.global_batch_size, ctx.job.seed,
                                                  task.shuffle_buffer, task.steps_per_epoch)  # fmt: skip
            # One stream through the run's epochs, ending with its last (train.max_steps may come first): the
            # prefetcher then reads nothing past the final step.
            needed = -(-train.max_steps // len(self.data)) if train.max_steps is not None else train.epochs
            self.data.epochs = min(train.epochs, needed)
        else:
            self.x, self.y = _tpu_friendly(*task.train)
            self.data = ReplicaBatches(len(self.x), train.global_batch_size, self.replicas, ctx.job.seed)
        self.steps_per_epoch = len(self.data)
        self.schedule = Schedule.of(train, self.steps_per_epoch * train.epochs)
        self.precision = train.precision
        devices = " ".join(strategy.extended.worker_devices)
        precision.check(
            self.precision, ctx.job.strategy.name, "TPU" if "TPU" in devices else "CUDA" if "GPU" in devices else "CPU"
        )
        if self.precision == "fp16" and train.clip_grad_norm is not None:
            raise ConfigError(
                "train.clip_grad_norm with train.precision=fp16 is not supported under TensorFlow yet (the clip would "
                "see loss-scaled gradients); use train.precision=bf16, or drop the clipping."
            )
        set_precision_policy(self.precision)  # before the model is built: its layers take the policy then
        with strategy.scope():
            self.model = task.model_fn()
            self.optimizer = task.optimizer or build_optimizer(train)
            self.keras_rate = schedule_rate(self.optimizer, self.schedule)
            if self.precision == "fp16":
                self.optimizer = loss_scaled(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.clip_grad_norm = train.clip_grad_norm
        accumulated = self.batch_split.micro_batch_size if self.batch_split.accumulation_steps > 1 else None
        self.grad_norms: list[Any] = []  # the window's pre-clip norms (per replica, equal), read at the log step
        self.steps = Steps(strategy, self.model, self.optimizer, task.loss, tuple(task.metrics.values()),
                           self.clip_grad_norm, loss_scaling=self.precision == "fp16",
                           micro_batch_size=accumulated)  # fmt: skip
        self.has_validation = task.val is not None
        self._reduce_inputs: dict[int, Any] = {}
        self.flops_per_sample = train.flops_per_sample or self._count_flops()

    def _count_flops(self) -> float | None:
        """The model's training FLOPs per sample, counted on the first rows of the training data."""
        rows = tf_flops.COUNT_ROWS
        if not isinstance(self.data, tf_dataset.DatasetBatches):
            return tf_flops.training_flops_per_sample(self.model, self.task.loss, self.x[:rows], self.y[:rows])
        try:  # the user's pipeline: elements (x, y) of one sample each
            x, y = self.task.train.take(rows).batch(rows).get_single_element()
        except Exception as exc:  # noqa: BLE001  (any element structure is the user's)
            log.info("model FLOPs not counted (the dataset's first elements: %s); set train.flops_per_sample", exc)
            return None
        return tf_flops.training_flops_per_sample(self.model, self.task.loss, x.numpy(), y.numpy())

    def peak(self) -> flops.Peak | None:
        stated = flops.stated_peak(self.ctx.job.train)
        return stated or tf_flops.device_peak(self.ctx.strategy.tf_strategy, self.precision)

    def restore(self, state: dict[str, Any]) -> None:
        try:
            restore(self.model, self.optimizer, state)
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"the checkpoint in {self.ctx.checkpoint_dir} does not fit this model ({exc}); resume with the "
                "workload that wrote it, or point checkpoint.dir elsewhere."
            ) from None

    def state(self) -> dict[str, Any]:
        return weights_state(self.model, self.optimizer)

    def start(self, step: int) -> None:
        """Nothing to wrap: the model was built in the strategy's scope, and the schedule reads the optimizer's own
        step counter (restored with its variables)."""

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[int, Any]]:
        """(global samples, the replicas' inputs) per step."""
        if isinstance(self.data, tf_dataset.DatasetBatches):
            for inputs in self.data.epoch(epoch, skip):
                yield self.global_batch_size, inputs
            return
        for index in self.data.epoch(epoch, skip):  # the index table covers every replica of every process
            yield index.size, self.steps.distribute(self.x, self.y, index)

    def samples(self, batch: tuple[int, Any]) -> int:
        return batch[0]

    def train_step(self, batch: tuple[int, Any]) -> Any:
        if self.clip_grad_norm is None:
            return self.steps.train_step(*batch[1])
        loss, norm = self.steps.train_step(*batch[1])
        self.grad_norms.append(norm)
        return loss

    def window_figures(self) -> dict[str, float]:
        if self.keras_rate is not None:  # the rate of the window's last update
            lr = float(self.keras_rate(max(0, int(self.optimizer.iterations.numpy()) - 1)))
        else:
            lr = float(tf.convert_to_tensor(self.optimizer.learning_rate))  # a variable, or a schedule of its own
        figures = {"lr": lr}
        if self.grad_norms:
            figures["grad_norm"] = self.steps.local_mean(self.grad_norms)
            self.grad_norms = []
        return figures

    def reduce_window(
        self, losses: list[Any], stop_vote: float, row: tuple[float, ...] = ()
    ) -> tuple[float, float, list[list[float]]]:
        n, k = self.ctx.world_size, len(row)
        packed = np.zeros(2 + n * k)
        packed[0], packed[1] = self.steps.local_mean(losses), stop_vote
        packed[2 + self.ctx.rank * k : 2 + (self.ctx.rank + 1) * k] = row
        summed = self.ctx.strategy.all_reduce_sum(packed).tolist()
        return summed[0] / n, summed[1], [summed[2 + r * k : 2 + (r + 1) * k] for r in range(n)] if k else []

    def local_losses(self, losses: list[Any]) -> list[float]:
        return [self.steps.local_mean([loss]) for loss in losses]

    def hosts(self) -> list[str]:
        """Every process's host name, in rank order, as every launcher names hosts: each name's bytes in its own
        row of one small all-reduce (once per run; TensorFlow has no all-gather of strings across processes)."""
        n = self.ctx.world_size
        if n == 1:
            return [socket.gethostname()]
        rows = np.zeros((n, HOST_NAME_BYTES))
        name = socket.gethostname().encode()[:HOST_NAME_BYTES]
        rows[self.ctx.rank, : len(name)] = list(name)
        summed = self.ctx.strategy.all_reduce_sum(rows.reshape(-1)).reshape(n, HOST_NAME_BYTES)
        return [bytes(int(b) for b in row if b).decode(errors="replace") for row in summed]

    def comm_times(self) -> tuple[float, float]:
        return 0.0, 0.0

    def compile_stats(self) -> dict[str, float]:
        return {}

    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy: replica r scores rows r, r + R, ...; the sums are reduced over replicas."""
        totals = np.zeros(3 + len(self.task.metrics))
        if is_tf_dataset(self.task.val):
            for inputs in tf_dataset.evaluation_batches(self.task.val, self.ctx.strategy.tf_strategy, EVAL_CHUNK):
                totals += self.steps.eval_sums(*inputs).numpy().astype(np.float64)
        else:
            x, y = _tpu_friendly(*self.task.val)
            shards = [np.arange(r, len(x), self.replicas) for r in range(self.replicas)]
            for start in range(0, len(shards[0]), EVAL_CHUNK):
                index = [shard[start : start + EVAL_CHUNK] for shard in shards]  # the last may differ by one row
                totals += self.steps.eval_sums(*self.steps.distribute(x, y, index)).numpy().astype(np.float64)
        loss_sum, correct, count, *sums = totals.tolist()
        return validation_figures(self.ctx, loss_sum, correct, count, dict(zip(self.task.metrics, sums, strict=True)))

    def per_rank(self, value: float) -> list[float]:
        slots = np.zeros(self.ctx.world_size)
        slots[self.ctx.rank] = value
        return self.ctx.strategy.all_reduce_sum(slots).tolist()

    def allreduce_time_s(self, nbytes: int) -> float:
        """One cross-replica sum of ``nbytes`` of float32 on the strategy's own collectives, read back."""
        values = max(1, nbytes // 4)
        if values not in self._reduce_inputs:
            self._reduce_inputs[values] = self.ctx.strategy.tf_strategy.experimental_distribute_values_from_function(
                lambda _: tf.ones([values], tf.float32)
            )
        per_replica = self._reduce_inputs[values]
        self.ctx.strategy.barrier()
        started = time.perf_counter()
        self.steps.sum_replicas(per_replica).numpy()
        return time.perf_counter() - started

    def measurements(self) -> dict[str, Any]:
        return {
            **model_size(self.model),
            "peak_rss_mib": self.per_rank(metrics.peak_rss_mib()),
            "replica_fingerprints": self.steps.fingerprints().numpy().tolist(),
            "precision": self.precision,
            "compute_dtype": self.model.compute_dtype,  # the mixed policy's, which the layers took when built
            "micro_batch_size": self.batch_split.micro_batch_size,
            "accumulation_steps": self.batch_split.accumulation_steps,
        }

    def report(self) -> dict[str, Any]:
        return self.task.report(self.model) if self.task.report is not None else {}


def _tpu_friendly(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class labels as int32, once rather than per batch: TPUs lack many int64 ops."""
    return x, (y.astype(np.int32) if np.issubdtype(y.dtype, np.integer) else y)
