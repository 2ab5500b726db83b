"""The checks every job gets before anything starts, whatever the launcher. Each ends in one sentence naming the
setting and the fix.

``job`` runs once per job, first (run.run_job): what every point of a sweep shares, the workload and the tracker.
run.preflight_point runs the rest around the launcher's own checks, once per point: ``settings`` (the point's
checkpoint directory and resume, and the strategy on the launcher's planned placement: nothing there asks a
cluster), then the launcher's (its cluster reachable, the job sized and fitting), then ``batch`` (which needs the
world size the launcher sized).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scaletrain import strategies, workloads
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import tracking
from scaletrain.rank import batching, checkpoint

if TYPE_CHECKING:
    from scaletrain.contract.config import Job
    from scaletrain.driver.launchers.base import Launcher


def job(job: Job) -> None:
    """What every point of the job shares: the workload (its framework, files and code) and the tracker."""
    workloads.preflight(job)
    tracking.preflight(job)


def settings(job: Job, launcher: Launcher) -> None:
    """The point's own, needing no cluster: its checkpoint directory, resume, and the strategy on the hosts and
    processes per host the launcher plans (its ``placement``, which never asks the cluster)."""
    checkpoint.check_dir(Path(job.checkpoint.dir))  # a file or unwritable dir: refused before anything starts
    if job.resume and checkpoint.latest(Path(job.checkpoint.dir)) is None:
        raise ConfigError(
            f"resume=true but {job.checkpoint.dir} holds no checkpoint; point checkpoint.dir (or hydra.run.dir) "
            "at an earlier run's directory, or drop resume=true."
        )
    strategies.of(job).preflight(job.strategy, job.train, launcher.placement, job.script)


def resume_size(job: Job, launcher: Launcher) -> None:
    """A resume runs on as many processes as wrote its checkpoint: on another number the data order, and so the
    result, would differ without a word (resuming on any size is not supported yet)."""
    if not job.resume:
        return
    size = checkpoint.written_size(Path(job.checkpoint.dir))
    if size is None or size.get("processes") in (None, launcher.world_size):
        return
    raise ConfigError(
        f"resume=true on {launcher.world_size} process(es), but the checkpoint in {job.checkpoint.dir} was written by "
        f"{size['processes']}; resume with {size['processes']} process(es) (scaletrain cannot yet resume on another "
        "size: the data order and so the result would change), or start a new run directory."
    )


def batch(job: Job, launcher: Launcher) -> None:
    """The global batch over the strategy's replicas at the world size the launcher sized (Ray: from its cluster),
    and into whole micro-batches there (a sweep checks each of its points)."""
    if job.script is not None:
        if job.train.micro_batch_size is not None:
            raise ConfigError(
                "train.micro_batch_size applies to scaletrain's own training loop, and script= runs the script's; "
                "drop train.micro_batch_size (accumulate in the script)."
            )
        return
    strategy = strategies.of(job)
    batch = job.train.global_batch_size
    replicas = strategy.replicas(job.strategy, launcher.world_size)
    if batch % replicas:
        fit = replicas * max(1, round(batch / replicas))
        what = f"the world size {replicas}" if replicas == launcher.world_size else f"the {replicas} replicas"
        raise ConfigError(
            f"train.global_batch_size={batch} is not divisible by {what}; use a multiple of {replicas} such as {fit}."
        )
    batching.split(batch, replicas, job.train.micro_batch_size)
