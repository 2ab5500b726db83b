"""The job-wide checks every point gets before anything starts, whatever the launcher.

run.preflight_point runs them around the launcher's own checks: ``settings`` first (the job's own settings and the
strategy on the launcher's planned placement: nothing there asks a cluster), then the launcher's (its cluster
reachable, the job sized and fitting), then ``batch`` (which needs the world size the launcher sized). Each ends in
one sentence naming the setting and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scaletrain import checkpoint, strategies, tracking, workloads
from scaletrain.errors import ConfigError

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.launchers.base import Launcher


def settings(job: Job, launcher: Launcher) -> None:
    """What needs no cluster: the checkpoint directory, resume, the workload, the tracker, and the strategy on the
    hosts and processes per host the launcher plans (its ``placement``, which never asks the cluster)."""
    checkpoint.check_dir(Path(job.checkpoint.dir))  # a file or unwritable dir: refused before anything starts
    if job.resume and checkpoint.latest(Path(job.checkpoint.dir)) is None:
        raise ConfigError(
            f"resume=true but {job.checkpoint.dir} holds no checkpoint; point checkpoint.dir (or hydra.run.dir) "
            "at an earlier run's directory, or drop resume=true."
        )
    workloads.preflight(job)
    tracking.preflight(job)
    strategies.of(job).preflight(job, launcher.placement)


def batch(job: Job, launcher: Launcher) -> None:
    """The global batch over the strategy's replicas at the world size the launcher sized (Ray: from its cluster)."""
    strategy = strategies.of(job)
    batch = job.train.global_batch_size
    replicas = strategy.replicas(job, launcher.world_size)
    if job.script is None and batch % replicas:
        fit = replicas * max(1, round(batch / replicas))
        what = f"the world size {replicas}" if replicas == launcher.world_size else f"the {replicas} replicas"
        raise ConfigError(
            f"train.global_batch_size={batch} is not divisible by {what}; use a multiple of {replicas} such as {fit}."
        )
