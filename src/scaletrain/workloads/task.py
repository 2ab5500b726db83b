"""A workload as the training driver consumes it (built-in or the user's own): one dataclass per framework."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaletrain.contract.errors import ConfigError

# How a rank's DataLoader workers start; forkserver by default, see loops/torch_loader.worker_context.
WORKER_START_METHODS = ("forkserver", "spawn", "fork")


def check_worker_start_method(value: str) -> None:
    if value not in WORKER_START_METHODS:
        raise ConfigError(
            f"workload.worker_start_method={value!r} is not known; use one of {', '.join(WORKER_START_METHODS)}."
        )


def is_torch_dataset(data: Any) -> bool:
    """A torch Dataset or IterableDataset (read through a DataLoader), not arrays held in memory. Imports nothing:
    without torch imported, nothing is a torch Dataset."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(data, torch.utils.data.Dataset | torch.utils.data.IterableDataset)


def is_tf_dataset(data: Any) -> bool:
    """A tf.data pipeline (distributed by the strategy), not arrays held in memory. Imports nothing."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


@dataclass
class TorchTask:
    model: Any  # torch.nn.Module, built under the job's seed so every rank starts identical
    train: Any  # (inputs, targets) tensors held in memory, or a torch Dataset read through a DataLoader
    val: Any = None  # the same kinds, or None
    loss: str | Callable[..., Any] = "cross_entropy"  # cross_entropy | mse | loss(outputs, targets, reduction=...)
    report: Callable[[Any], dict[str, float]] | None = None  # extra final figures from the trained model
    optimizer: Callable[[Any], Any] | None = None  # params -> torch optimizer; None: train.optimizer
    num_workers: int = 0  # DataLoader worker processes per rank (Dataset data only)
    worker_start_method: str = "forkserver"  # how they start: forkserver | spawn | fork
    steps_per_epoch: int | None = None  # for data without a length (an IterableDataset)
    metrics: dict[str, Callable[..., Any]] = field(default_factory=dict)  # name -> metric(outputs, targets): mean


@dataclass
class TFTask:
    model_fn: Callable[[], Any]  # builds the Keras model; the loop calls it inside the strategy's scope
    train: Any  # (inputs, targets) NumPy arrays (channels last) in memory, or a tf.data.Dataset of rows
    val: Any = None  # the same kinds, or None
    loss: str | Callable[..., Any] = "cross_entropy"  # cross_entropy | mse | loss(targets, outputs) per row
    report: Callable[[Any], dict[str, float]] | None = None  # extra final figures from the trained model
    optimizer: Any = None  # a Keras optimizer; None: train.optimizer
    steps_per_epoch: int | None = None  # for a dataset without a known length
    shuffle_buffer: int = 10000  # tf.data rows shuffled together
    metrics: dict[str, Callable[..., Any]] = field(default_factory=dict)  # name -> metric(targets, outputs): mean
