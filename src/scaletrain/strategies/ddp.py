"""PyTorch DistributedDataParallel: one process per device, gradients averaged by all-reduce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaletrain.common import hardware
from scaletrain.contract.errors import ConfigError
from scaletrain.rank import precision
from scaletrain.strategies.plugin import Placement, StrategyPlugin

BACKENDS = ("auto", "gloo", "nccl")


@dataclass
class Config:
    name: str = "ddp"
    backend: str = "auto"  # auto: nccl on GPUs, gloo on CPU
    timeout_s: float = 300.0
    find_unused_parameters: bool = False

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"strategy.backend='{self.backend}' is not known; use one of: {', '.join(BACKENDS)}.")
        if self.timeout_s <= 0:
            raise ConfigError(f"strategy.timeout_s={self.timeout_s} must be positive.")


def resolve_backend(backend: str, gpus: int) -> str:
    if backend == "auto":
        return "nccl" if gpus > 0 else "gloo"
    return backend


class DDP(StrategyPlugin):
    framework = "torch"
    Config = Config

    def preflight(self, config: Config, train: Any, placement: Placement, script: str | None = None) -> None:
        precision.check(train.precision, "ddp", "CUDA" if hardware.gpu_count() else "CPU")
        if config.backend == "nccl" and hardware.gpu_count() == 0:
            raise ConfigError(
                "strategy.backend=nccl needs NVIDIA GPUs and none were found on this host; "
                "use strategy.backend=gloo (or auto)."
            )

    def describe(self, config: Config, placement: Placement) -> str:
        gpus = hardware.gpu_count()
        backend = resolve_backend(config.backend, gpus)
        found = f"{gpus} GPU(s) found" if gpus else "no GPU found"
        return f"ddp with {backend} ({found})"


PLUGIN = DDP()
