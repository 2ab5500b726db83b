"""The contract between the training driver and a framework: what one stepper (torch, TensorFlow) supplies.

The driver (``rank/loops/driver.py``) owns the cadence; a stepper owns everything that touches framework objects.
A new framework is one class with these members and nothing else to learn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

log = logging.getLogger("scaletrain")


class Stepper(Protocol):
    framework: str  # "torch" | "tensorflow", as in Strategy.framework
    replicas: int  # model replicas in sync over every process: the devices the global batch is split over
    steps_per_epoch: int
    has_validation: bool
    measures_comm: bool  # True when comm_times() splits the all-reduce out of each step
    flops_per_sample: float | None  # training FLOPs (forward + backward) per sample, counted; None: not countable

    def peak(self) -> Any:
        """The peak FLOP/s of one of this rank's devices (flops.Peak), or None where none is known."""

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's state (model, optimizer, random state) written by ``state()``."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds, besides the step the driver adds."""

    def start(self, step: int) -> None:
        """Training begins at optimizer step ``step`` (after any restore: the checkpoint's step, where the learning
        rate schedule stands): wrap the model, move it, compile."""

    def batches(self, epoch: int, skip: int) -> Iterator[Any]:
        """This process's batches of ``epoch``, ready for ``train_step``, without the first ``skip``."""

    def samples(self, batch: Any) -> int:
        """Samples in this step over every process (the throughput meter's unit)."""

    def train_step(self, batch: Any) -> Any:
        """One optimizer step; returns the loss as a handle, not read back (reading would sync every step)."""

    def window_figures(self) -> dict[str, float]:
        """The optimizer's figures of the log window now ending, the same on every rank: the learning rate of its
        last step (``lr``) and, with train.clip_grad_norm, the mean global gradient norm before clipping
        (``grad_norm``)."""

    def reduce_window(
        self, losses: list[Any], stop_vote: float, row: tuple[float, ...] = ()
    ) -> tuple[float, float, list[list[float]]]:
        """One collective for a log window: the mean of ``losses`` over steps and ranks, the sum of every rank's
        ``stop_vote``, and every rank's ``row`` of figures (its step times), in rank order."""

    def local_losses(self, losses: list[Any]) -> list[float]:
        """This process's loss of each step in ``losses`` (the mean over its devices), read back; no collective.
        Only read once a window's loss came out non-finite, to say where."""

    def hosts(self) -> list[str]:
        """Every process's host, in rank order (called once, at the start)."""

    def comm_times(self) -> tuple[float, float]:
        """(busy, exposed) seconds of gradient communication since the last call."""

    def compile_stats(self) -> dict[str, float]:
        """Cumulative graph compilations, e.g. {"compiles": 3, "compile_time_s": 0.4}; {} where nothing compiles."""

    def evaluate(self) -> dict[str, float]:
        """Validation figures (``val_loss``, ``val_accuracy``) over every rank's shard, identical on every rank."""

    def per_rank(self, value: float) -> list[float]:
        """Every process's ``value``, in rank order, on every process."""

    def allreduce_time_s(self, nbytes: int) -> float:
        """Seconds for one all-reduce of ``nbytes`` over every replica, on the collectives training uses."""

    def measurements(self) -> dict[str, Any]:
        """End-of-run figures only this framework can take: model size, memory, replica fingerprints."""

    def report(self) -> dict[str, Any]:
        """The workload's own final figures (rank 0 only), e.g. a learned weight."""


def validation_figures(ctx: Any, loss_sum: float, correct: float, count: float, sums: dict[str, float]) -> dict:
    """Per-row means of the validation sums (the loss, the accuracy, each metric as ``val_<name>``), logged once."""
    figures = {"val_loss": loss_sum / count, "val_accuracy": correct / count}
    figures.update({f"val_{name}": value / count for name, value in sums.items()})
    if ctx.is_rank_zero:
        log.info("validation: %s", ", ".join(f"{k.removeprefix('val_')} {v:.4f}" for k, v in figures.items()))
    return figures
