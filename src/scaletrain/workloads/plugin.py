"""A workload as the driver and the worker see it: one registered class per workload, every hook defaulted.

A new workload is a module under ``workloads/`` holding its ``Config`` dataclass and a ``WorkloadPlugin`` subclass
exported as ``PLUGIN``; a YAML file under ``conf/workload/``; and one entry in ``registry.WORKLOADS`` (which the
shared contract test, tests/unit/test_plugin_contract.py, runs through its checks). A workload either builds a task
per framework (``build_torch`` / ``build_tensorflow``: model and data, trained by scaletrain's training driver) or
trains by itself (``trains_itself`` and ``run``: a user's function). The worker picks the training loop, never the
workload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from scaletrain.contract.errors import ConfigError
from scaletrain.contract.registry import NamedByConfig

if TYPE_CHECKING:
    from scaletrain.workloads.task import TFTask, TorchTask

FRAMEWORKS = ("torch", "tensorflow")


class WorkloadPlugin(NamedByConfig):
    """The hooks called for the job's workload; each default suits a built-in model with its data in memory."""

    name: ClassVar[str]  # its Config's name (set from it, below)
    Config: ClassVar[type]  # the workload's settings (``workload.*``), validated by its ``validate``
    trains_itself: ClassVar[bool] = False  # ``run(ctx)`` drives training itself; the worker calls it on every rank

    def frameworks(self, config: Any) -> tuple[str, ...]:
        """The frameworks it can train under with these settings: those it builds a task for (any, when it trains
        by itself)."""
        if self.trains_itself:
            return FRAMEWORKS
        return tuple(
            f for f in FRAMEWORKS if getattr(type(self), f"build_{f}") is not getattr(WorkloadPlugin, f"build_{f}")
        )

    def framework_missing(self, config: Any, framework: str, strategy: str) -> str:
        """The sentence refusing ``+strategy=<strategy>``, whose ``framework`` it does not train under."""
        given = " or ".join(self.frameworks(config))
        return (
            f"workload={self.name} has no {framework} version for +strategy={strategy}; pick a strategy of {given}, "
            "or another workload."
        )

    def preflight(self, config: Any) -> None:
        """Checks before anything starts, on the driver: its files present and readable, its code importable."""

    def build_torch(self, config: Any, seed: int) -> TorchTask:
        """Model and data for the torch training driver (ddp, xla); the same ``seed`` gives the same weights."""
        raise ConfigError(self._no_version("torch"))

    def build_tensorflow(self, config: Any, seed: int) -> TFTask:
        """Model and data for the TensorFlow training driver (mirrored, tpu)."""
        raise ConfigError(self._no_version("tensorflow"))

    def _no_version(self, framework: str) -> str:  # pre-flight refuses this first, naming the strategy
        return (
            f"workload '{self.name}' has no {framework} version; pick a workload that does or a strategy of another "
            "framework."
        )

    def build(self, framework: str, config: Any, seed: int) -> TorchTask | TFTask:
        return getattr(self, f"build_{framework}")(config, seed)

    def run(self, ctx: Any) -> dict[str, Any]:
        """Train on this rank by itself (``trains_itself``); returns figures for the run's summary."""
        raise NotImplementedError(f"workload {self.name} does not train by itself")
