"""The compiled pieces of the TensorFlow loop: one training step, validation sums and replica fingerprints.

Each is a ``tf.function`` around ``strategy.run``: every replica computes on its own slice of the batch, and
the Keras optimizer sums the replicas' gradients before applying them, so each replica scales its mean loss
by 1 / replicas (the gradient of the global mean, as DDP averages). Sums are float32 and labels int32 because
TPUs have no float64 and only some int64 ops.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from scaletrain.contract.config import TrainConfig
from scaletrain.contract.errors import ConfigError
from scaletrain.rank.loops.schedule import Schedule
from scaletrain.rank.strategies.tf_base import import_tensorflow

tf = import_tensorflow()


def build_optimizer(train: TrainConfig) -> Any:
    """The Keras twin of the torch loop's optimizer (epsilon as torch's; weight decay is Keras' decoupled kind)."""
    import keras

    decay = train.weight_decay or None
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=train.lr, momentum=train.momentum, weight_decay=decay)
    kind = keras.optimizers.Adam if train.optimizer == "adam" else keras.optimizers.AdamW
    if kind is keras.optimizers.AdamW:
        return kind(learning_rate=train.lr, weight_decay=train.weight_decay, epsilon=1e-8)
    return kind(learning_rate=train.lr, weight_decay=decay, epsilon=1e-8)


def set_precision_policy(precision: str) -> None:
    """Keras' global dtype policy for the layers built next: mixed_bfloat16 / mixed_float16 (variables in fp32,
    compute in the low precision), or float32."""
    import keras

    policy = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}.get(precision, "float32")
    keras.mixed_precision.set_global_policy(policy)


def loss_scaled(optimizer: Any) -> Any:
    """fp16: Keras' dynamic loss scaling around ``optimizer`` (it unscales the gradients and skips a step whose
    gradients are not finite)."""
    import keras

    return keras.optimizers.LossScaleOptimizer(optimizer)


def schedule_rate(optimizer: Any, schedule: Schedule) -> Any:
    """Put ``schedule`` on a Keras optimizer, its own rate being the base; returns the Keras schedule, or None when
    the rate stays constant. Keras evaluates it on the optimizer's own step counter, a variable the checkpoint
    holds, so a resume continues it exactly."""
    if not schedule.varies:
        return None
    rate = optimizer.get_config()["learning_rate"]
    if not isinstance(rate, (int, float)):
        raise ConfigError(
            "the workload's optimizer has a learning-rate schedule of its own, so train.lr_schedule and "
            "train.warmup_steps cannot apply; leave them at constant and 0, or give the optimizer a fixed rate."
        )
    keras_rate = ScheduledRate(float(rate), schedule)
    optimizer.learning_rate = keras_rate
    return keras_rate


def schedule_factor(schedule: Schedule, step: Any) -> Any:
    """``schedule.factor(step)`` in TensorFlow ops (rank/loops/schedule.py has the formula)."""
    s = tf.cast(step, tf.float32)
    after = tf.maximum(s - schedule.warmup_steps, 0.0)
    if schedule.kind == "constant":
        decayed = tf.ones_like(s)
    elif schedule.kind == "step":
        decayed = tf.pow(tf.constant(schedule.step_gamma, tf.float32), tf.floor(after / schedule.step_every))
    else:
        progress = tf.minimum(1.0, after / max(1, schedule.total_steps - schedule.warmup_steps))
        shape = 0.5 * (1.0 + tf.cos(math.pi * progress)) if schedule.kind == "cosine" else 1.0 - progress
        decayed = schedule.min_ratio + (1.0 - schedule.min_ratio) * shape
    if schedule.warmup_steps:
        return tf.where(s < schedule.warmup_steps, (s + 1.0) / schedule.warmup_steps, decayed)
    return decayed


def _keras_schedule_base() -> type:
    import keras

    return keras.optimizers.schedules.LearningRateSchedule


class ScheduledRate(_keras_schedule_base()):
    """The base rate times the schedule's factor at the optimizer's step: a Keras LearningRateSchedule."""

    def __init__(self, base_lr: float, schedule: Schedule) -> None:
        self.base_lr, self.schedule = base_lr, schedule

    def __call__(self, step: Any) -> Any:
        return self.base_lr * schedule_factor(self.schedule, step)

    def get_config(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, **dataclasses.asdict(self.schedule)}


def dense(gradient: Any) -> Any:
    """A gradient as a dense tensor (an embedding's comes as IndexedSlices, which cannot be scaled or summed)."""
    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


def per_example_loss(kind: Any, outputs: Any, targets: Any) -> Any:
    outputs = tf.cast(outputs, tf.float32)  # a mixed policy's low-precision outputs: the loss in fp32
    if callable(kind):  # the user's own: loss(targets, outputs), one value per row (as Keras losses are called)
        return kind(targets, outputs)
    if kind == "mse":
        return tf.reduce_mean(tf.square(outputs - targets), axis=-1)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=outputs)


class Steps:
    """The compiled functions of one model under one tf.distribute strategy."""

    def __init__(
        self,
        strategy: Any,
        model: Any,
        optimizer: Any,
        loss: str,
        metrics: tuple = (),
        clip_grad_norm: float | None = None,
        loss_scaling: bool = False,
        micro_batch_size: int | None = None,
    ) -> None:
        self.strategy, self.model, self.optimizer, self.loss = strategy, model, optimizer, loss
        self.micro_batch_size = micro_batch_size  # None: a replica computes its rows of a step at once
        self.clip_grad_norm = clip_grad_norm
        self.loss_scaling = loss_scaling
        self.metrics = tuple(metrics)  # metric(targets, outputs) -> the batch's mean, summed as mean × rows
        self.replicas = strategy.num_replicas_in_sync
        self.local_replicas = len(strategy.extended.worker_devices)
        self.train_step = tf.function(self._train_step, reduce_retracing=True)
        self.eval_sums = tf.function(self._eval_sums, reduce_retracing=True)
        self.fingerprints = tf.function(self._fingerprints)
        self.sum_replicas = tf.function(self._sum_replicas, reduce_retracing=True)

    def distribute(self, x: np.ndarray, y: np.ndarray, index: np.ndarray) -> tuple[Any, Any]:
        """Inputs for ``strategy.run``: replica r gets rows ``index[r]`` (only this process's replicas are built)."""
        if self.replicas == 1:
            return tf.constant(x[index[0]]), tf.constant(y[index[0]])

        def rows(ctx: Any) -> tuple[Any, Any]:
            mine = index[ctx.replica_id_in_sync_group]
            return tf.constant(x[mine]), tf.constant(y[mine])

        return self.strategy.experimental_distribute_values_from_function(rows)

    def local_mean(self, per_replica_losses: list[Any]) -> float:
        """The mean of this process's replicas' losses over the given steps (read on the host, no collective)."""
        if self.local_replicas == 1:
            values = [float(v) for v in per_replica_losses]  # one local replica: plain tensors, nothing to unpack
        else:
            values = [float(t) for v in per_replica_losses for t in self.strategy.experimental_local_results(v)]
        return sum(values) / len(values)

    def _train_step(self, x: Any, y: Any) -> Any:
        """One optimizer step on every replica; returns each replica's loss (averaged across processes only when
        read, at log points, so a step costs no extra collective), and with clipping the global norm before it."""
        model, optimizer = self.model, self.optimizer

        def replica(x: Any, y: Any) -> Any:
            if self.micro_batch_size is None:
                loss, grads = self._gradients(x, y, 1.0)
            else:
                loss, grads = self._accumulated(x, y)
            if self.clip_grad_norm is not None:
                grads, norm = self._clipped(grads)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return (loss, norm) if self.clip_grad_norm is not None else loss

        return self.strategy.run(replica, args=(x, y))

    def _gradients(self, x: Any, y: Any, share: float) -> tuple[Any, list[Any]]:
        """One replica's mean loss on (x, y) and the gradients of its part of the global mean: the loss weighted by
        1 / replicas (the optimizer sums the replicas' gradients) and by ``share``, its part of the step's rows."""
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_example_loss(self.loss, self.model(x, training=True), y))
            scaled = loss * (share / self.replicas)
            if self.loss_scaling:  # fp16: Keras' LossScaleOptimizer scales here and unscales in apply
                scaled = self.optimizer.scale_loss(scaled)
        return loss, tape.gradient(scaled, self.model.trainable_variables)

    def _accumulated(self, x: Any, y: Any) -> tuple[Any, list[Any]]:
        """The replica's rows in micro-batches of ``micro_batch_size``, one after another (a while loop, so that one
        micro-batch's activations are live at a time), their gradients summed, each weighted by its share of the
        rows (an epoch's partial last batch ends in a smaller one): the optimizer then all-reduces and applies once
        per step."""
        micro = self.micro_batch_size
        variables = self.model.trainable_variables
        rows = tf.shape(x)[0]
        steps = (rows + micro - 1) // micro

        def body(i: Any, loss_sum: Any, sums: list[Any]) -> tuple[Any, Any, list[Any]]:
            xi, yi = x[i * micro : (i + 1) * micro], y[i * micro : (i + 1) * micro]
            share = tf.cast(tf.shape(xi)[0], tf.float32) / tf.cast(rows, tf.float32)
            loss, grads = self._gradients(xi, yi, share)
            grads = [tf.zeros_like(v) if g is None else dense(g) for g, v in zip(grads, variables, strict=True)]
            return i + 1, loss_sum + loss * share, [total + g for total, g in zip(sums, grads, strict=True)]

        start = (tf.constant(0), tf.constant(0.0), [tf.zeros_like(v) for v in variables])
        _, loss, grads = tf.while_loop(lambda i, *_: i < steps, body, start, parallel_iterations=1)
        return loss, grads

    def _clipped(self, grads: list[Any]) -> tuple[list[Any], Any]:
        """The gradients clipped by the global norm of their sum over every replica (Keras' own clipping would see
        one replica's part before its all-reduce): summed here, clipped, and each replica hands the optimizer a
        1/R share of the clipped sum, which the optimizer's own all-reduce adds back up. One extra all-reduce of the
        gradients per step, paid only with train.clip_grad_norm set."""
        grads = [dense(g) for g in grads]  # an embedding's sparse gradient too: it is scaled below
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        clipped, norm = tf.clip_by_global_norm(summed, self.clip_grad_norm)
        return [g / self.replicas for g in clipped], norm

    def _eval_sums(self, x: Any, y: Any) -> Any:
        """(loss sum, correct, count, each metric's sum) over every replica's slice of one chunk (counts stay exact
        below 2**24)."""

        def replica(x: Any, y: Any) -> Any:
            outputs = tf.cast(self.model(x, training=False), tf.float32)
            correct = tf.reduce_sum(tf.cast(tf.argmax(outputs, axis=-1, output_type=tf.int32) == y, tf.float32))
            losses = per_example_loss(self.loss, outputs, y)  # one per row, or per position of a sequence
            loss_sum = tf.reduce_sum(losses)
            rows = tf.cast(tf.size(losses), tf.float32)
            metric_sums = [tf.cast(metric(y, outputs), tf.float32) * rows for metric in self.metrics]
            return tf.stack([loss_sum, correct, rows, *metric_sums])

        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica, args=(x, y)), axis=None)

    def _sum_replicas(self, per_replica: Any) -> Any:
        """The element-wise sum over every replica: the all-reduce the gradients go through."""
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _fingerprints(self) -> Any:
        """One number per replica summarising its own copy of the weights: equal when the replicas agree."""

        def replica() -> Any:
            ctx = tf.distribute.get_replica_context()
            weights = [tf.reduce_sum(tf.cast(w.value, tf.float32)) * (i + 1) for i, w in enumerate(self.model.weights)]
            return tf.one_hot(ctx.replica_id_in_sync_group, self.replicas, dtype=tf.float32) * tf.add_n(weights)

        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica), axis=None)


def weights_state(model: Any, optimizer: Any) -> dict[str, Any]:
    """Model and optimizer variables as NumPy arrays (this process's copy), for a checkpoint."""
    return {"model": model.get_weights(), "optimizer": [v.numpy() for v in optimizer.variables]}


def restore(model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    model.set_weights(state["model"])
    for variable, value in zip(optimizer.variables, state["optimizer"], strict=True):
        variable.assign(value)
