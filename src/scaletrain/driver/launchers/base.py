"""The launcher seam: what every launcher answers (world size, placement, its own checks) and what each rank runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from scaletrain.contract.config import Job
from scaletrain.contract.errors import ConfigError
from scaletrain.contract.registry import NamedByConfig
from scaletrain.strategies.plugin import Placement


class Launcher(NamedByConfig, ABC):
    """Starts the job's ranks somewhere, supervises them and returns the job's exit code. A launcher module exports
    its ``Config`` and its class as ``PLUGIN`` (registry.LAUNCHERS); the class is built with the job."""

    name: ClassVar[str]  # the launcher=<name> that picks it: its Config's name (set from it, below)
    Config: ClassVar[type]  # its settings (launchers/<name>.py)

    def __init__(self, job: Job) -> None:
        self.job = job

    @classmethod
    def sweep_point(cls, job: Job, world_size: int, largest: int) -> Any:
        """This launcher's settings for the scaling-sweep point of ``world_size`` ranks (the sweep's largest point
        has ``largest``); one that cannot run sweeps refuses in a sentence."""
        raise ConfigError(
            f"launcher={job.launcher.name} cannot run scaling sweeps yet; use launcher=local, ray or slurm."
        )

    @property
    @abstractmethod
    def world_size(self) -> int:
        """How many ranks the job will have."""

    @property
    @abstractmethod
    def placement(self) -> Placement:
        """Hosts and processes per host, as far as the launcher knows them before it starts anything: all a
        strategy's driver-side hooks learn of the launcher."""

    def describe(self) -> str:
        return f"{self.job.launcher.name} launcher, {self.world_size} rank(s)"

    def preflight(self) -> None:  # noqa: B027  (a defaulted hook: local needs few checks, ray and slurm more)
        """The launcher's own checks before anything starts (its cluster reachable, the job fitting it); the
        job-wide ones are scaletrain.driver.preflight's, run around these by run.preflight_point."""

    @property
    def holds_run_dir(self) -> bool:
        """Whether this process is the job's driver, which holds the run directory (driver/runlock.py): not a rank
        that a submitted job's script started, nor a further node of a multi-host job."""
        return True

    @property
    def trains_here(self) -> bool:
        """Whether ``launch`` returns once the job trained (a summary to report on), not once it was handed on."""
        return True

    def submitted_job_ids(self) -> list[str]:
        """The scheduler's ids of the jobs this launcher submitted: they hold the run directory once the driver
        has exited."""
        return []

    def release(self) -> None:  # noqa: B027  (a defaulted hook: only a launcher holding a connection has one)
        """Give back what ``preflight`` took (a cluster connection) when the job will not be launched."""

    @abstractmethod
    def launch(self, job_file: Path) -> int:
        """Run the job to the end; the return value is the job's exit code."""
