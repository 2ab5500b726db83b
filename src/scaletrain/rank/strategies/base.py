"""The strategy seam: what a training loop may ask of any strategy, per framework."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, BinaryIO, ClassVar

from scaletrain.contract.env import ClusterEnv


class Strategy(ABC):
    """Sets up and tears down the collective machinery of one framework for this process."""

    framework: ClassVar[str]  # "torch" or "tensorflow": which training loop drives this strategy
    # Leave the process without interpreter finalization once everything is written (see worker.py).
    exit_without_finalization: ClassVar[bool] = False

    def __init__(self, config: Any, env: ClusterEnv) -> None:
        self.config = config
        self.env = env

    @abstractmethod
    def setup(self) -> None:
        """Join the group of ranks; blocks until every rank has joined."""

    @abstractmethod
    def barrier(self) -> None:
        """Wait until every rank reaches this point."""

    @abstractmethod
    def teardown(self) -> None:
        """Leave the group cleanly; safe to call after a failed setup."""

    @abstractmethod
    def save_state(self, state: dict[str, Any], f: BinaryIO) -> None:
        """Serialize a checkpoint's state into an open binary file."""

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on at least one: a collective, so every rank must call it.

        Multi-process strategies override this with one small reduction; without it they cannot stop together.
        """
        if self.env.world_size == 1:
            return flag
        raise NotImplementedError(f"{type(self).__name__} does not implement any_rank, needed to stop all ranks")

    @abstractmethod
    def load_state(self, f: BinaryIO) -> dict[str, Any]:
        """Read back what save_state wrote."""


class TorchStrategy(Strategy):
    """A strategy for PyTorch models: the torch training loop drives any subclass."""

    framework = "torch"
    # gloo's threads can still hold work objects with Python references at finalization and abort the process
    # ("terminate called without an active exception", ~1 in 40 runs on 2 cores); skipping it avoids that.
    exit_without_finalization = True
    # True where every step must have the same shapes (XLA compiles one graph per shape): the loop then drops
    # an epoch's last, partial batch instead of running it.
    static_shapes: ClassVar[bool] = False
    devices_per_process: int = 1  # devices one process computes on (the meter's per-device figures divide by it)

    @property
    @abstractmethod
    def device(self) -> Any:
        """The torch.device this rank computes on."""

    @abstractmethod
    def wrap_model(self, model: Any) -> Any:
        """The model as the loop should call it (e.g. wrapped in DistributedDataParallel)."""

    @abstractmethod
    def all_reduce_sum(self, tensor: Any) -> Any:
        """Sum a tensor over all ranks, in place, and return it."""

    measures_comm: ClassVar[bool] = False  # True where take_comm_times() times the gradient all-reduce

    def optimizer_step(self, optimizer: Any) -> None:
        optimizer.step()

    def allreduce_time_s(self, nbytes: int) -> float:
        """Seconds for one all-reduce of ``nbytes`` through ``all_reduce_sum`` (after a barrier, synced)."""
        import time

        import torch

        buffer = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=self.device)
        self.barrier()
        started = time.perf_counter()
        self.all_reduce_sum(buffer)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started

    def take_comm_times(self) -> tuple[float, float]:
        """(busy, exposed) seconds of gradient communication since the last call; (0, 0) if not measured."""
        return 0.0, 0.0

    def prepare_batch(self, *tensors: Any) -> tuple[Any, ...]:
        """This process's CPU batch tensors, moved (and, where the strategy shards input, sharded) to the device."""
        device = self.device  # a tensor already there is passed as is: .to() costs a dispatch even when it is a no-op
        return tuple(t if t.device == device else t.to(device, non_blocking=True) for t in tensors)

    def step_end(self) -> None:
        """One unit of device work (a training step, an evaluation chunk) is complete; lazy runtimes run it here."""

    def compile_stats(self) -> dict[str, float]:
        """Cumulative graph compilations so far, e.g. {"compiles": 3, "compile_time_s": 0.4}; {} if nothing compiles.

        Read at log points only, so it must not wait for the device.
        """
        return {}

    def any_rank(self, flag: bool) -> bool:
        if self.env.world_size == 1:
            return flag
        import torch

        votes = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.all_reduce_sum(votes).item() > 0)

    def save_state(self, state: dict[str, Any], f: BinaryIO) -> None:
        import torch  # lazily: the driver never needs torch

        torch.save(state, f)

    def load_state(self, f: BinaryIO) -> dict[str, Any]:
        import torch

        return torch.load(f, map_location="cpu", weights_only=True)
