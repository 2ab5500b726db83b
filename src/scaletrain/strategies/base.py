"""The strategy seam: what a training loop may ask of any strategy, per framework."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, BinaryIO, ClassVar

from scaletrain.env import ClusterEnv


class Strategy(ABC):
    """Sets up and tears down the collective machinery of one framework for this process."""

    framework: ClassVar[str]  # "torch" or "tensorflow": which training loop drives this strategy

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

    def optimizer_step(self, optimizer: Any) -> None:
        optimizer.step()

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
