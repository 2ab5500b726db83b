"""The PyTorch stepper (ddp, xla): a TorchTask's model, optimizer and batches as the training driver asks for them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from scaletrain.contract.config import TrainConfig
from scaletrain.contract.errors import ConfigError
from scaletrain.rank import batching, flops, precision
from scaletrain.rank.context import RunContext
from scaletrain.rank.loops import torch_flops, torch_stats
from scaletrain.rank.loops.schedule import Schedule
from scaletrain.rank.loops.torch_data import ShardedBatches
from scaletrain.rank.loops.torch_loader import EvaluationBatches, LoaderBatches
from scaletrain.rank.model_size import model_size
from scaletrain.workloads.task import TorchTask, is_torch_dataset


def cross_entropy(out: Any, targets: Any, reduction: str = "mean") -> Any:
    """Cross-entropy of class logits (batch, classes), or of a sequence's (batch, positions, classes) against its
    (batch, positions) targets, averaged over every position."""
    if out.dim() == 2:  # class logits, every step of most models: no reshape on the hot path
        return F.cross_entropy(out, targets, reduction=reduction)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), reduction=reduction)


LOSSES = {"cross_entropy": cross_entropy, "mse": F.mse_loss}


def build_optimizer(train: TrainConfig, params) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    kind = torch.optim.Adam if train.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=train.lr, weight_decay=train.weight_decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class TorchStepper:
    framework = "torch"

    def __init__(self, ctx: RunContext, task: TorchTask) -> None:
        job, strategy = ctx.job, ctx.strategy
        seed_everything(job.seed)
        self.ctx, self.task, self.strategy = ctx, task, strategy
        self.model = task.model.to(strategy.device)
        self.wrapped = self.model
        params = self.model.parameters()
        self.optimizer = task.optimizer(params) if task.optimizer else build_optimizer(job.train, params)
        self.loss_fn = LOSSES[task.loss] if isinstance(task.loss, str) else task.loss
        batch_size = job.train.global_batch_size // ctx.world_size
        if is_torch_dataset(task.train):  # the user's Dataset: read through a DataLoader, files opened by its workers
            pin = strategy.device.type == "cuda"
            self.data = LoaderBatches(task.train, batch_size, ctx.rank, ctx.world_size, job.seed, task.num_workers,
                                      pin, task.steps_per_epoch, task.worker_start_method)  # fmt: skip
        elif isinstance(task.train, tuple | list) and len(task.train) == 2:
            self.data = ShardedBatches(
                *task.train, batch_size, ctx.rank, ctx.world_size, job.seed, strategy.static_shapes
            )
        else:
            raise ConfigError(
                f"the workload's training data is a {type(task.train).__name__}: neither (inputs, targets) tensors "
                "nor a torch Dataset; give TorchTask.train one of those (a Dataset subclasses torch.utils.data.Dataset)"
            )
        if len(self.data) == 0:
            raise ConfigError(
                f"train.global_batch_size={job.train.global_batch_size} is larger than the {len(task.train[0])} "
                f"training samples, and {job.strategy.name} trains on full batches only; use a smaller global "
                "batch size."
            )
        self.steps_per_epoch = len(self.data)
        self.has_validation = task.val is not None
        self.val_chunks = None
        if is_torch_dataset(task.val):
            self.val_chunks = EvaluationBatches(task.val, torch_stats.EVAL_CHUNK, ctx.rank, ctx.world_size,
                                                task.num_workers, task.worker_start_method)  # fmt: skip
        self.measures_comm = strategy.measures_comm
        # The process's rows of a step in accumulation steps of the micro-batch (global = micro x devices x steps)
        self.batch_split = batching.split(job.train.global_batch_size, self.replicas, job.train.micro_batch_size)
        self.accumulation_steps = self.batch_split.accumulation_steps
        self.schedule = Schedule.of(job.train, self.steps_per_epoch * job.train.epochs)
        self.base_lrs = [float(group["lr"]) for group in self.optimizer.param_groups]  # a user optimizer's own too
        self.clip_grad_norm = job.train.clip_grad_norm
        self.grad_norms: list[Any] = []  # the window's pre-clip norms, read back at the log step
        self.optimizer_steps = 0
        self.precision = job.train.precision
        self.device_type = strategy.device.type  # cpu | cuda | xla
        if self.device_type != "xla":  # xla's device was checked before start; the others are known only here
            precision.check(self.precision, job.strategy.name, self.device_type)
        low = precision.LOW.get(self.precision)
        self.autocast_dtype = getattr(torch, low) if low else None
        self.compute_dtype = torch.float32 if low is None else None  # under autocast: the forward's own output
        # fp16 only (CUDA): the loss scaler, and the scale after each step (a decrease: that step was skipped)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.scales: list[Any] = []
        self._last_scale = float(self.scaler.get_scale()) if self.scaler is not None else 0.0  # the initial scale
        self.skipped_steps = 0
        self.flops_per_sample = job.train.flops_per_sample or torch_flops.training_flops_per_sample(
            self.model, self.loss_fn, *torch_flops.sample_rows(task.train)
        )

    def peak(self) -> flops.Peak | None:
        devices = self.strategy.devices_per_process
        return flops.stated_peak(self.ctx.job.train) or torch_flops.device_peak(self.strategy.device, self.precision,
                                                                                 devices)  # fmt: skip

    @property
    def replicas(self) -> int:
        return self.ctx.world_size * self.strategy.devices_per_process  # known after setup (XLA counts its devices)

    def restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"the checkpoint in {self.ctx.checkpoint_dir} does not fit this model ({_first_mismatch(exc)}); "
                "resume with the workload that wrote it, or point checkpoint.dir elsewhere."
            ) from None
        torch.set_rng_state(state["rng"])

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def start(self, step: int) -> None:
        self.optimizer_steps = step  # the schedule's position: the checkpoint's step
        self.wrapped = self.strategy.wrap_model(self.model)  # after loading: DDP broadcasts rank 0's weights here
        self.wrapped.train()

    def batches(self, epoch: int, skip: int) -> Iterator[Any]:
        """A step's (x, y) on the device; with accumulation, the tuple of its micro-batches' (x, y), split on the
        host so that each is placed (and, under XLA, sharded over the devices) as a whole batch would be."""
        self.wrapped.train()
        rows = self.batch_split.micro_batch_size * self.strategy.devices_per_process  # a micro-batch's, here
        for batch in self.data.epoch(epoch, skip):
            if self.accumulation_steps == 1:
                yield self.strategy.prepare_batch(*batch)
            else:  # an epoch's partial last batch ends in a smaller micro-batch
                chunks = zip(*(t.split(rows) for t in batch), strict=True)
                yield tuple(self.strategy.prepare_batch(*chunk) for chunk in chunks)

    def samples(self, batch: Any) -> int:
        rows = len(batch[0]) if self.accumulation_steps == 1 else sum(len(micro[0]) for micro in batch)
        return rows * self.ctx.world_size

    def train_step(self, batch: Any) -> Any:
        if self.schedule.varies:
            factor = self.schedule.factor(self.optimizer_steps)
            for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = base_lr * factor
        self.optimizer.zero_grad(set_to_none=True)
        if self.accumulation_steps == 1:
            loss = self._backward(batch, 1)
        else:  # the gradients add up over the micro-batches; DDP all-reduces only on the last one's backward
            rows = [len(micro[0]) for micro in batch]  # equal, but for an epoch's partial last batch
            shares = [n / sum(rows) for n in rows]
            loss = 0.0
            for i, (micro, share) in enumerate(zip(batch, shares, strict=True)):
                with self._no_sync() if i < len(batch) - 1 else nullcontext():
                    loss = loss + self._backward(micro, share) * share
        if self.scaler is None:
            self._clip()
            self.strategy.optimizer_step(self.optimizer)
        else:
            self._scaled_step()
        self.strategy.step_end()  # lazy runtimes (XLA) run the step here; nothing is read back until a log step
        self.optimizer_steps += 1
        return loss

    def _backward(self, batch: tuple[Any, ...], share: float) -> Any:
        """Forward and backward of one (micro-)batch, its loss weighted by its ``share`` of the step's rows so that
        the accumulated gradient is the whole batch's mean; returns its unweighted loss, detached."""
        x, y = batch
        if self.autocast_dtype is None:
            loss = self.loss_fn(self.wrapped(x), y)
        else:  # the forward pass in the low precision; the loss from its output in fp32
            with torch.autocast(self.device_type, dtype=self.autocast_dtype):
                out = self.wrapped(x)
            self.compute_dtype = out.dtype
            loss = self.loss_fn(out.float(), y)
        scaled = loss * share if share != 1 else loss
        (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
        return loss.detach()

    def _no_sync(self) -> Any:
        """DDP's context that keeps a backward's gradients local (no all-reduce); XLA and one process need none."""
        no_sync = getattr(self.wrapped, "no_sync", None)
        return no_sync() if no_sync is not None else nullcontext()

    def _clip(self) -> None:
        if self.clip_grad_norm is not None:  # the gradients are every rank's average by now (DDP, XLA's SPMD)
            self.grad_norms.append(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm))

    def _scaled_step(self) -> None:
        """fp16 (the backward ran on the scaled loss): clipping on the unscaled gradients, a step the scaler skips
        when they hold an inf or NaN. GradScaler reads its scale back only through get_scale(), a device sync, so the
        scale tensor is kept per step and compared at the log step instead."""
        scaler = self.scaler
        if self.clip_grad_norm is not None:
            scaler.unscale_(self.optimizer)
            self._clip()
        scaler.step(self.optimizer)
        scaler.update()
        self.scales.append(scaler._scale.clone())

    def window_figures(self) -> dict[str, float]:
        figures = {"lr": float(self.optimizer.param_groups[0]["lr"])}
        if self.grad_norms:
            figures["grad_norm"] = torch.stack(self.grad_norms).float().mean().item()
            self.grad_norms = []
        if self.scales:  # the scaler backs off (halves its scale) exactly at a skipped step
            scales = torch.stack(self.scales).flatten().tolist()
            skipped = sum(later < earlier for earlier, later in zip(scales, scales[1:], strict=False))
            skipped += int(scales[0] < self._last_scale)
            self._last_scale, self.scales = scales[-1], []
            self.skipped_steps += skipped
            figures["skipped_steps"] = skipped
        return figures

    def reduce_window(
        self, losses: list[Any], stop_vote: float, row: tuple[float, ...] = ()
    ) -> tuple[float, float, list[list[float]]]:
        mean = torch.stack(losses).float().mean() if len(losses) > 1 else losses[0].reshape(()).float()
        n, k = self.ctx.world_size, len(row)
        packed = torch.zeros(2 + n * k, dtype=torch.float64, device=mean.device)
        packed[0], packed[1] = mean, stop_vote
        if k:
            packed[2 + self.ctx.rank * k : 2 + (self.ctx.rank + 1) * k] = torch.tensor(row, dtype=torch.float64)
        summed = self.strategy.all_reduce_sum(packed).tolist()
        return summed[0] / n, summed[1], [summed[2 + r * k : 2 + (r + 1) * k] for r in range(n)] if k else []

    def local_losses(self, losses: list[Any]) -> list[float]:
        return torch.stack([loss.float().mean() for loss in losses]).tolist()

    def hosts(self) -> list[str]:
        return torch_stats.hosts(self.ctx)

    def comm_times(self) -> tuple[float, float]:
        return self.strategy.take_comm_times()

    def compile_stats(self) -> dict[str, float]:
        return self.strategy.compile_stats()

    def evaluate(self) -> dict[str, float]:
        return torch_stats.evaluate(self.ctx, self.model, self.task, self.loss_fn, self.val_chunks)

    def per_rank(self, value: float) -> list[float]:
        return torch_stats.gather_per_rank(self.ctx, value)

    def allreduce_time_s(self, nbytes: int) -> float:
        return self.strategy.allreduce_time_s(nbytes)

    def measurements(self) -> dict[str, Any]:
        return {
            **model_size(self.model),
            **torch_stats.memory(self.ctx),  # peak_rss_mib: one entry per process
            "replica_fingerprints": torch_stats.replica_fingerprints(self.ctx, self.model),
            "precision": self.precision,
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
            "micro_batch_size": self.batch_split.micro_batch_size,
            "accumulation_steps": self.accumulation_steps,
            **({"skipped_steps": self.skipped_steps} if self.scaler is not None else {}),
        }

    def report(self) -> dict[str, Any]:
        return self.task.report(self.model) if self.task.report is not None else {}


def _first_mismatch(exc: Exception) -> str:
    """The line of load_state_dict's error that names what differs (its first line only says "Error(s) in ...")."""
    lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    return (named or lines or [type(exc).__name__])[0]
