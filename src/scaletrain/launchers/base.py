"""The launcher seam: checks shared by every launcher, and what each rank is started with."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path

from scaletrain import checkpoint, strategies, tracking, workloads
from scaletrain.config import Job
from scaletrain.errors import ConfigError
from scaletrain.strategies.plugin import Placement


class Launcher(ABC):
    """Starts the job's ranks somewhere, supervises them and returns the job's exit code."""

    def __init__(self, job: Job) -> None:
        self.job = job

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

    def preflight(self) -> None:
        """Everything that can be checked before a process, job or cluster is started."""
        job = self.job
        strategy = strategies.of(job)
        strategy.preflight(job, self.placement)
        workloads.preflight(job)
        tracking.preflight(job)
        batch = job.train.global_batch_size
        replicas = strategy.replicas(job, self.world_size)
        if job.script is None and batch % replicas:
            fit = replicas * max(1, round(batch / replicas))
            what = f"the world size {replicas}" if replicas == self.world_size else f"the {replicas} replicas"
            raise ConfigError(
                f"train.global_batch_size={batch} is not divisible by {what}; "
                f"use a multiple of {replicas} such as {fit}."
            )
        if job.resume and checkpoint.latest(Path(job.checkpoint.dir)) is None:
            raise ConfigError(
                f"resume=true but {job.checkpoint.dir} holds no checkpoint; point checkpoint.dir (or hydra.run.dir) "
                "at an earlier run's directory, or drop resume=true."
            )

    @abstractmethod
    def launch(self, job_file: Path) -> int:
        """Run the job to the end; the return value is the job's exit code."""


def worker_argv(job: Job, job_file: Path) -> list[str]:
    """The command every rank runs: scaletrain's worker, or the user's script through the worker's exec shim."""
    if job.script is not None:
        return [sys.executable, "-m", "scaletrain.worker", "--exec", job.script, *job.script_args]
    return [sys.executable, "-m", "scaletrain.worker", str(job_file)]
