"""A built-in workload as the training loops consume it: one dataclass per framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class TorchTask:
    model: Any  # torch.nn.Module, built under the job's seed so every rank starts identical
    train: tuple[Any, Any]  # (inputs, targets) tensors, the whole training set in memory
    val: tuple[Any, Any] | None = None
    loss: str = "cross_entropy"  # cross_entropy | mse
    report: Callable[[Any], dict[str, float]] | None = None  # extra final figures from the trained model


@dataclass
class TFTask:
    model_fn: Callable[[], Any]  # builds the Keras model; the loop calls it inside the strategy's scope
    train: tuple[Any, Any]  # (inputs, targets) NumPy arrays, channels last, the whole training set in memory
    val: tuple[Any, Any] | None = None
    loss: str = "cross_entropy"  # cross_entropy | mse
    report: Callable[[Any], dict[str, float]] | None = None  # extra final figures from the trained model
