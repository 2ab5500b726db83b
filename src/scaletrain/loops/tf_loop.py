"""The TensorFlow training loop every TensorFlow strategy (mirrored, tpu) drives: the torch loop's twin.

A custom loop (``strategy.run`` in a ``tf.function``), not ``model.fit``: Keras 3's fit fails under
MultiWorkerMirroredStrategy in TF 2.21, and a loop of our own gives the same metrics, checkpoints, mid-epoch
resume and summary as the PyTorch loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from scaletrain import metrics
from scaletrain.context import RunContext
from scaletrain.errors import ConfigError
from scaletrain.loops.progress import Progress, log_done
from scaletrain.loops.tf_data import ReplicaBatches
from scaletrain.loops.tf_steps import Steps, build_optimizer, restore, weights_state
from scaletrain.metrics import ThroughputMeter
from scaletrain.workloads.task import TFTask

log = logging.getLogger("scaletrain")

EVAL_CHUNK = 1024  # validation rows per replica per call


def fit(ctx: RunContext, task: TFTask) -> dict[str, Any]:
    """Train ``task`` on this process's replicas under ``ctx.strategy``; returns the figures for summary.json."""
    job, train, strategy = ctx.job, ctx.job.train, ctx.strategy.tf_strategy
    replicas = strategy.num_replicas_in_sync
    if train.global_batch_size % replicas:
        raise ConfigError(
            f"train.global_batch_size={train.global_batch_size} does not split over the {replicas} replicas; "
            f"use a multiple of {replicas}."
        )
    with strategy.scope():
        model = task.model_fn()
        optimizer = build_optimizer(train)
        optimizer.build(model.trainable_variables)
    steps = Steps(strategy, model, optimizer, task.loss)
    x, y = _tpu_friendly(*task.train)
    batches = ReplicaBatches(len(x), train.global_batch_size, replicas, job.seed)
    total_steps = len(batches) * train.epochs
    if train.max_steps is not None:
        total_steps = min(total_steps, train.max_steps)

    step = start_step = 0
    state = ctx.load_checkpoint()
    if state is not None:
        try:
            restore(model, optimizer, state)
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"the checkpoint in {ctx.checkpoint_dir} does not fit this model ({exc}); resume with the workload "
                "that wrote it, or point checkpoint.dir elsewhere."
            ) from None
        step = start_step = int(state["step"])

    meter = ThroughputMeter(replicas)  # per device = per replica
    progress = Progress(ctx.is_rank_zero, total_steps, step)
    window: list[Any] = []  # per-replica losses since the last log point, read there
    first_step_unix_s = None
    last_checkpoint_step = step
    started = time.perf_counter()
    loss = None
    evaluated: tuple[int, dict[str, float]] | None = None  # (step, figures) of the latest validation
    while step < total_steps:
        epoch, skip = divmod(step, len(batches))
        for index in batches.epoch(epoch, skip):
            loss = steps.train_step(*steps.distribute(x, y, index))
            step += 1
            window.append(loss)
            meter.add_step(index.size)
            if first_step_unix_s is None:
                first_step_unix_s = time.time()
            if step % train.log_every_n_steps == 0 or step == total_steps:
                figures = {"epoch": epoch, "loss": global_mean(ctx, steps.local_mean(window)), **meter.read()}
                ctx.log(figures, step)
                progress.update(step, figures)
                window = []
            if job.checkpoint.every_n_steps and step % job.checkpoint.every_n_steps == 0:
                ctx.save_checkpoint(weights_state(model, optimizer), step)
                last_checkpoint_step = step
            if step >= total_steps:
                break
        if step % len(batches) == 0 and task.val is not None:
            evaluated = (step, evaluate(ctx, steps, task))
            ctx.log({"epoch": epoch, **evaluated[1]}, step)
    progress.close()
    if last_checkpoint_step != step:
        ctx.save_checkpoint(weights_state(model, optimizer), step)

    summary: dict[str, Any] = metrics.run_summary(
        replicas, step, start_step, train.epochs, len(batches), time.perf_counter() - started, first_step_unix_s
    )
    if loss is not None:
        summary["final_loss"] = global_mean(ctx, steps.local_mean([loss]))
    summary.update(meter.totals())
    summary["replica_fingerprints"] = steps.fingerprints().numpy().tolist()
    if task.val is not None:
        summary.update(evaluated[1] if evaluated and evaluated[0] == step else evaluate(ctx, steps, task))
    summary["peak_rss_mib"] = per_process(ctx, metrics.peak_rss_mib())
    if task.report is not None and ctx.is_rank_zero:
        summary.update(task.report(model))
    if ctx.is_rank_zero:
        log_done(summary)
    return summary


def evaluate(ctx: RunContext, steps: Steps, task: TFTask) -> dict[str, float]:
    """Validation loss and accuracy: replica r scores rows r, r + R, ...; the sums are reduced over replicas."""
    x, y = _tpu_friendly(*task.val)
    shards = [np.arange(r, len(x), steps.replicas) for r in range(steps.replicas)]
    totals = np.zeros(3)
    for start in range(0, len(shards[0]), EVAL_CHUNK):
        index = [shard[start : start + EVAL_CHUNK] for shard in shards]  # the last chunks may differ by one row
        totals += steps.eval_sums(*steps.distribute(x, y, index)).numpy().astype(np.float64)
    loss_sum, correct, count = totals.tolist()
    figures = {"val_loss": loss_sum / count, "val_accuracy": correct / count}
    if ctx.is_rank_zero:
        log.info("validation: loss %.4f accuracy %.4f", figures["val_loss"], figures["val_accuracy"])
    return figures


def _tpu_friendly(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class labels as int32, once rather than per batch: TPUs lack many int64 ops."""
    return x, (y.astype(np.int32) if np.issubdtype(y.dtype, np.integer) else y)


def global_mean(ctx: RunContext, local_mean: float) -> float:
    """The mean over processes (each drives as many replicas) of a per-process mean."""
    return float(ctx.strategy.all_reduce_sum(np.array([local_mean]))[0]) / ctx.world_size


def per_process(ctx: RunContext, mine: float) -> list[float]:
    """Every process's value of ``mine``, in rank order, on every process."""
    slots = np.zeros(ctx.world_size)
    slots[ctx.rank] = mine
    return ctx.strategy.all_reduce_sum(slots).tolist()
