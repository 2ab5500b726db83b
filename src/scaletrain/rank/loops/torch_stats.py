"""End-of-run measurements of the PyTorch stepper: validation, replica agreement, memory, model size."""

from __future__ import annotations

import logging
import socket
from typing import Any

import torch

from scaletrain.rank.context import RunContext
from scaletrain.rank.loops.stepper import validation_figures
from scaletrain.rank.metrics import peak_rss_mib
from scaletrain.workloads.task import TorchTask

log = logging.getLogger("scaletrain")
EVAL_CHUNK = 1024


def evaluate(ctx: RunContext, model: torch.nn.Module, task: TorchTask, loss_fn, chunks=None) -> dict[str, float]:
    """Validation loss, accuracy and the task's own metrics (``val_<name>``, each a batch mean weighted by its
    rows): each rank scores its shard (``chunks`` of a Dataset, else the in-memory arrays), the sums are
    all-reduced."""
    device = ctx.strategy.device
    metrics = dict(task.metrics)
    totals = torch.zeros(3 + len(metrics), dtype=torch.float64, device=device)  # loss sum, correct, count, metrics
    model.eval()
    with torch.no_grad():
        for xb, yb in chunks if chunks is not None else _val_chunks(ctx, task):
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            totals[0] += loss_fn(out, yb, reduction="sum").double()
            if out.dim() > 2 and yb.dim() == out.dim() - 1:  # a sequence's logits: every position is scored
                out, yb = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
            totals[1] += (out.argmax(dim=1) == yb).sum().double()
            totals[2] += len(yb)
            for i, metric in enumerate(metrics.values()):
                totals[3 + i] += torch.as_tensor(metric(out, yb), dtype=torch.float64, device=device) * len(yb)
            ctx.strategy.step_end()
    model.train()
    ctx.strategy.all_reduce_sum(totals)
    loss_sum, correct, count, *sums = totals.tolist()
    return validation_figures(ctx, loss_sum, correct, count, dict(zip(metrics, sums, strict=True)))


def _val_chunks(ctx: RunContext, task: TorchTask):
    """This rank's share of in-memory validation arrays (samples rank, rank + N, ...), in chunks."""
    x, y = task.val
    mine = torch.arange(ctx.rank, len(x), ctx.world_size)
    for start in range(0, len(mine), EVAL_CHUNK):
        idx = mine[start : start + EVAL_CHUNK]
        yield x[idx], y[idx]


def gather_per_rank(ctx: RunContext, value: float) -> list[float]:
    """Every rank's ``value``, in rank order, on every rank (one small all-reduce)."""
    slots = torch.zeros(ctx.world_size, dtype=torch.float64, device=ctx.strategy.device)
    slots[ctx.rank] = value
    return ctx.strategy.all_reduce_sum(slots).tolist()


def hosts(ctx: RunContext) -> list[str]:
    """Every rank's host name, in rank order (one object all-gather, once per run)."""
    if ctx.world_size == 1:
        return [socket.gethostname()]
    import torch.distributed as dist

    found: list[str] = [""] * ctx.world_size
    dist.all_gather_object(found, socket.gethostname())
    return found


def replica_fingerprints(ctx: RunContext, model: torch.nn.Module) -> list[float]:
    """One number per rank summarising its weights: equal on every rank when the replicas are in sync."""
    mine = sum(float((p.detach().cpu().double() * (i + 1)).sum()) for i, p in enumerate(model.parameters()))
    return gather_per_rank(ctx, mine)


def memory(ctx: RunContext) -> dict[str, Any]:
    """Peak memory of every rank's process (and of its GPU, on CUDA), in MiB, one entry per rank."""
    figures: dict[str, Any] = {"peak_rss_mib": gather_per_rank(ctx, peak_rss_mib())}
    device = ctx.strategy.device
    if getattr(device, "type", None) == "cuda":
        figures["peak_gpu_mib"] = gather_per_rank(ctx, torch.cuda.max_memory_allocated(device) / 2**20)
    return figures
