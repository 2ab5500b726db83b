"""A strategy as the driver sees it before any rank starts: one registered class per strategy, every hook defaulted.

A new strategy is a module under ``strategies/`` holding its ``Config`` dataclass, a ``StrategyPlugin`` subclass
(exported as ``PLUGIN``) and its rank-side ``Strategy`` class; a YAML file under ``conf/strategy/``; and one entry
in ``strategies.REGISTRY`` (which the shared contract test, tests/unit/test_plugin_contract.py, runs through its
checks). The driver-side hooks get the job's strategy, train and workload settings and the launcher's
``Placement``, never the launcher's own settings: the contract test hands them a job whose launcher raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from scaletrain.env import ClusterEnv
    from scaletrain.strategies.base import Strategy


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


class StrategyPlugin:
    """The hooks the driver calls for the job's strategy; each default suits a one-process-per-device strategy."""

    name: ClassVar[str]
    framework: ClassVar[str]  # "torch" | "tensorflow": what its ranks train with
    Config: ClassVar[type]  # the strategy's settings (``strategy.*``), validated by its ``validate``
    worker_addresses: ClassVar[bool] = False  # ranks name every peer's address before they start (TF_CONFIG)
    procs_per_node: ClassVar[int | None] = None  # processes per host it wants for nproc_per_node=auto; None: any
    procs_per_node_required: ClassVar[bool] = False  # it cannot run any other number per host

    def preflight(self, job: Any, placement: Placement) -> None:
        """Checks before anything starts (a GPU backend on a host without GPUs, a missing framework)."""

    def describe(self, job: Any, placement: Placement) -> str:
        return self.name

    def worker_env(self, job: Any, env: ClusterEnv) -> dict[str, str]:
        """Variables a rank of this strategy needs beyond torchrun's (launchers/rank_spec.py declares them)."""
        return {}

    def replicas(self, job: Any, world_size: int) -> int:
        """Model replicas training in sync when the job runs as ``world_size`` processes; raises ConfigError when
        it cannot run with that many."""
        return world_size

    def devices(self, job: Any, processes: int) -> int:
        """The devices a job of ``processes`` processes trains on, as far as the driver can tell before any rank
        starts (a run's summary then gives the measured count): its replicas by default."""
        return self.replicas(job, processes)

    def sweep_point(self, config: Any, world_size: int) -> tuple[Any, int]:
        """(strategy config, processes) for a scaling-sweep point of ``world_size`` devices."""
        return config, world_size

    def create(self, config: Any, env: ClusterEnv) -> Strategy:
        """The rank-side strategy (imported by workers only: it may import the framework)."""
        raise NotImplementedError(f"strategy {self.name} has no rank-side implementation")
