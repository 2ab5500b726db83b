"""The PyTorch training loop every torch strategy (ddp, xla) drives: small enough to hold in your head."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from scaletrain import metrics
from scaletrain.config import TrainConfig
from scaletrain.context import RunContext
from scaletrain.loops.progress import Progress, log_done
from scaletrain.metrics import ThroughputMeter
from scaletrain.workloads.task import TorchTask

log = logging.getLogger("scaletrain")

LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}
EVAL_CHUNK = 1024


class ShardedBatches:
    """Per-rank batches of in-memory tensors; the shard and order change every epoch (DistributedSampler's)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, rank: int, world_size: int, seed: int):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.sampler = DistributedSampler(x, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``epoch``, leaving out the first ``skip`` (already trained before a resume)."""
        self.sampler.set_epoch(epoch)
        indices = torch.tensor(list(self.sampler))
        for start in range(skip * self.batch_size, len(indices), self.batch_size):
            batch = indices[start : start + self.batch_size]
            yield self.x[batch], self.y[batch]


def build_optimizer(train: TrainConfig, params) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    kind = torch.optim.Adam if train.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=train.lr, weight_decay=train.weight_decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def fit(ctx: RunContext, task: TorchTask) -> dict[str, Any]:
    """Train ``task`` on this rank under ``ctx.strategy``; returns the final figures for summary.json."""
    job, strategy, train = ctx.job, ctx.strategy, ctx.job.train
    seed_everything(job.seed)
    device = strategy.device
    model = task.model.to(device)
    optimizer = build_optimizer(train, model.parameters())
    loss_fn = LOSSES[task.loss]
    batches = ShardedBatches(*task.train, train.global_batch_size // ctx.world_size, ctx.rank, ctx.world_size, job.seed)
    total_steps = len(batches) * train.epochs
    if train.max_steps is not None:
        total_steps = min(total_steps, train.max_steps)

    step = start_step = 0
    state = ctx.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step = start_step = state["step"]
    wrapped = strategy.wrap_model(model)  # after loading: DDP broadcasts rank 0's weights at wrap time

    def checkpoint_state() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}

    meter = ThroughputMeter(ctx.world_size)
    progress = Progress(ctx.is_rank_zero, total_steps, step)
    window_loss, window_steps = torch.zeros((), device=device), 0
    first_step_unix_s = None
    last_checkpoint_step = step
    started = time.perf_counter()
    loss = None
    evaluated: tuple[int, dict[str, float]] | None = None  # (step, figures) of the latest validation
    while step < total_steps:
        epoch, skip = divmod(step, len(batches))
        wrapped.train()
        for x, y in batches.epoch(epoch, skip):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(wrapped(x), y)
            loss.backward()
            strategy.optimizer_step(optimizer)
            step += 1
            window_loss += loss.detach()
            window_steps += 1
            meter.add_step(x.shape[0] * ctx.world_size)
            if first_step_unix_s is None:
                first_step_unix_s = time.time()
            if step % train.log_every_n_steps == 0 or step == total_steps:
                mean_loss = _global_mean(strategy, window_loss / window_steps, ctx.world_size)
                figures = {"epoch": epoch, "loss": mean_loss, **meter.read()}
                ctx.log(figures, step)
                progress.update(step, figures)
                window_loss, window_steps = torch.zeros((), device=device), 0
            if job.checkpoint.every_n_steps and step % job.checkpoint.every_n_steps == 0:
                ctx.save_checkpoint(checkpoint_state(), step)
                last_checkpoint_step = step
            if step >= total_steps:
                break
        if step % len(batches) == 0 and task.val is not None:
            evaluated = (step, evaluate(ctx, model, task, loss_fn))
            ctx.log({"epoch": epoch, **evaluated[1]}, step)
    progress.close()
    if last_checkpoint_step != step:
        ctx.save_checkpoint(checkpoint_state(), step)

    train_time_s = time.perf_counter() - started
    summary: dict[str, Any] = {
        "replicas": ctx.world_size,
        "steps": step,
        "epochs": train.epochs,
        "steps_per_epoch": len(batches),
        "train_time_s": train_time_s,
    }
    if step > start_step:
        summary["epoch_time_s"] = metrics.epoch_time_s(train_time_s, step - start_step, len(batches))
    if loss is not None:
        summary["final_loss"] = _global_mean(strategy, loss.detach(), ctx.world_size)
    if first_step_unix_s is not None:
        summary["first_step_unix_s"] = first_step_unix_s
    summary.update(meter.totals())
    summary["replica_fingerprints"] = replica_fingerprints(ctx, model)
    if task.val is not None:
        summary.update(evaluated[1] if evaluated and evaluated[0] == step else evaluate(ctx, model, task, loss_fn))
    summary["peak_rss_mib"] = per_rank(ctx, metrics.peak_rss_mib())  # one per process
    if task.report is not None and ctx.is_rank_zero:
        summary.update(task.report(model))
    if ctx.is_rank_zero:
        log_done(summary)
    return summary


def evaluate(ctx: RunContext, model: torch.nn.Module, task: TorchTask, loss_fn) -> dict[str, float]:
    """Validation loss and accuracy: each rank scores its shard, the sums are all-reduced."""
    x, y = task.val
    device = ctx.strategy.device
    mine = torch.arange(ctx.rank, len(x), ctx.world_size)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    model.eval()
    with torch.no_grad():
        for start in range(0, len(mine), EVAL_CHUNK):
            idx = mine[start : start + EVAL_CHUNK]
            xb, yb = x[idx].to(device), y[idx].to(device)
            out = model(xb)
            totals[0] += loss_fn(out, yb, reduction="sum").double()
            totals[1] += (out.argmax(dim=1) == yb).sum().double()
            totals[2] += len(idx)
    model.train()
    ctx.strategy.all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    figures = {"val_loss": loss_sum / count, "val_accuracy": correct / count}
    if ctx.is_rank_zero:
        log.info("validation: loss %.4f accuracy %.4f", figures["val_loss"], figures["val_accuracy"])
    return figures


def replica_fingerprints(ctx: RunContext, model: torch.nn.Module) -> list[float]:
    """One number per rank summarising its weights: equal on every rank when the replicas are in sync."""
    return per_rank(ctx, sum(float((p.detach().double() * (i + 1)).sum()) for i, p in enumerate(model.parameters())))


def per_rank(ctx: RunContext, mine: float) -> list[float]:
    """Every rank's value of ``mine``, in rank order, on every rank."""
    slots = torch.zeros(ctx.world_size, dtype=torch.float64, device=ctx.strategy.device)
    slots[ctx.rank] = mine
    return ctx.strategy.all_reduce_sum(slots).tolist()


def _global_mean(strategy, value: torch.Tensor, world_size: int) -> float:
    total = value.detach().clone().reshape(1).float()
    return strategy.all_reduce_sum(total).item() / world_size
