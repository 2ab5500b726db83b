"""What one rank process is started with (``RankSpec``), built the same way by every launcher (``build``) and by a
SLURM task (rank/slurm_rank.py): the worker's command line, torchrun's variables, the strategy's and scaletrain's
own (contract/rank_env.py names and explains them all).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scaletrain.contract.rank_env import (
    BEACON_DIR,
    CUDA_VISIBLE_DEVICES,
    OMP_NUM_THREADS,
    PROGRESS,
    PYTHONUNBUFFERED,
    RESTART_COUNT,
    STOP_SIGNAL,
)

if TYPE_CHECKING:
    from scaletrain.contract.config import Job
    from scaletrain.contract.env import ClusterEnv

WORKER = "scaletrain.rank.worker"  # python -m: every rank's entry point


def worker_argv(job: Job, job_file: Path) -> list[str]:
    """The command line of a rank: the worker on the job file, or the worker running the user's script."""
    if job.script is not None:
        return [sys.executable, "-m", WORKER, "--exec", job.script, *job.script_args]
    return [sys.executable, "-m", WORKER, str(job_file)]


@dataclass(frozen=True)
class RankSpec:
    """What one rank process is started with."""

    rank: int
    argv: list[str]
    env: dict[str, str]  # the whole environment, or only the rank's own variables when ``Facts.base`` was empty
    log_path: Path | None = None  # where its output is kept, besides the relay (None: the launcher keeps none)


@dataclass(frozen=True)
class Facts:
    """What a launcher knows about the rank beyond the job and its ClusterEnv."""

    base: Mapping[str, str] = field(default_factory=dict)  # the environment the rank inherits; {}: whoever starts
    # the process merges the spec into its own (the Ray actor)
    beacon_dir: Path | str | None = None  # the watchdog's beacon directory, when the launcher knows it up front
    threads: int | str | None = None  # OMP_NUM_THREADS, whatever ``base`` holds
    default_threads: int | str | None = None  # OMP_NUM_THREADS only when ``base`` holds none
    stop_signal: str | None = None  # None: the worker's default stop signal
    progress: bool = False  # the launcher's output is a terminal
    cuda_visible: str | None = None  # CUDA_VISIBLE_DEVICES; None: left as ``base`` has it
    log_dir: Path | None = None  # where the launcher keeps each rank's log (rank_log_path)


def rank_log_path(log_dir: Path | None, rank: int) -> Path | None:
    return Path(log_dir) / f"rank_{rank}.log" if log_dir is not None else None


def build(job: Job, cluster: ClusterEnv, argv: list[str], restart_count: int, facts: Facts | None = None) -> RankSpec:
    """The spec of ``cluster``'s rank in attempt ``restart_count``: ``facts.base`` with torchrun's variables, the
    strategy's (``worker_env``) and scaletrain's own on top."""
    from scaletrain import strategies  # not at the top: the Ray actor imports this module with the stdlib alone

    facts = facts or Facts()
    env = dict(facts.base)
    env.update(cluster.torchrun_vars())
    env.update(strategies.of(job).worker_env(job.strategy, cluster))
    if facts.beacon_dir is not None:
        env[BEACON_DIR] = str(facts.beacon_dir)
    env[RESTART_COUNT] = str(restart_count)
    if facts.stop_signal is not None:
        env[STOP_SIGNAL] = facts.stop_signal
    env[PYTHONUNBUFFERED] = "1"
    if facts.threads is not None:
        env[OMP_NUM_THREADS] = str(facts.threads)
    elif facts.default_threads is not None and OMP_NUM_THREADS not in facts.base:
        env[OMP_NUM_THREADS] = str(facts.default_threads)
    if facts.progress:
        env[PROGRESS] = "1"
    if facts.cuda_visible is not None:
        env[CUDA_VISIBLE_DEVICES] = facts.cuda_visible
    return RankSpec(cluster.rank, list(argv), env, rank_log_path(facts.log_dir, cluster.rank))
