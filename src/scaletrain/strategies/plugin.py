"""A strategy as the driver sees it before any rank starts: one registered class per strategy, every hook defaulted.

A new strategy is a module under ``strategies/`` holding its ``Config`` dataclass and a ``StrategyPlugin`` subclass
(exported as ``PLUGIN``); its rank-side ``Strategy`` class in rank/strategies/ (exported as ``RUNTIME``); a YAML file
under ``conf/strategy/``; and one entry in contract/registry.py (which the shared contract test,
tests/unit/test_plugin_contract.py, runs through its checks). The hooks get the strategy's own settings and, where
they need them, the job's train settings and the launcher's ``Placement``: never the job, so never the launcher's
own settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scaletrain.contract.registry import NamedByConfig

if TYPE_CHECKING:
    from scaletrain.contract.env import ClusterEnv


@dataclass(frozen=True)
class Placement:
    """Where the launcher will run the job's ranks: hosts and processes per host, each None when the launcher
    learns it only as it places them (Ray's placement groups)."""

    nodes: int | None
    procs_per_node: int | None
    nodes_from: str = "launcher.nnodes"  # the setting that gave ``nodes``, for messages

    @property
    def world_size(self) -> int | None:
        if self.nodes is None or self.procs_per_node is None:
            return None
        return self.nodes * self.procs_per_node


class StrategyPlugin(NamedByConfig):
    """The hooks the driver calls for the job's strategy; each default suits a one-process-per-device strategy."""

    name: ClassVar[str]  # its Config's name (set from it, below)
    framework: ClassVar[str]  # "torch" | "tensorflow": what its ranks train with
    Config: ClassVar[type]  # the strategy's settings (``strategy.*``), validated by its ``validate``
    worker_addresses: ClassVar[bool] = False  # ranks name every peer's address before they start (TF_CONFIG)
    procs_per_node: ClassVar[int | None] = None  # processes per host it wants for nproc_per_node=auto; None: any
    procs_per_node_required: ClassVar[bool] = False  # it cannot run any other number per host

    def preflight(self, config: Any, train: Any, placement: Placement, script: str | None = None) -> None:
        """Checks before anything starts (a GPU backend on a host without GPUs, a missing framework), from the
        strategy's settings, the job's train settings and where the launcher places the ranks; ``script``: the
        unmodified script the job runs instead of a workload (its batch is the script's own)."""

    def describe(self, config: Any, placement: Placement) -> str:
        return self.name

    def worker_env(self, config: Any, cluster: ClusterEnv) -> dict[str, str]:
        """Variables a rank of this strategy needs beyond torchrun's (contract/rank_env.py declares them)."""
        return {}

    def replicas(self, config: Any, processes: int) -> int:
        """Model replicas training in sync when the job runs as ``processes`` processes; raises ConfigError when
        it cannot run with that many."""
        return processes

    def devices(self, config: Any, processes: int) -> int:
        """The devices a job of ``processes`` processes trains on, as far as the driver can tell before any rank
        starts (a run's summary then gives the measured count): its replicas by default."""
        return self.replicas(config, processes)

    def sweep_point(self, config: Any, devices: int) -> tuple[Any, int]:
        """(strategy config, processes) for a scaling-sweep point of ``devices`` devices."""
        return config, devices
