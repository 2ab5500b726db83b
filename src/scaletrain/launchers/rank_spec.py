"""The rank contract: every environment variable a rank process can be given, with its meaning (``TABLE``), and the
one function that builds what a rank is started with (``build``), for every launcher.

The worker side (``worker.py``, ``loops/progress.py``) reads these variables through the same constants the
launchers write them with. Only the standard library is imported at the top: the Ray actor imports this module on
every node of a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.env import ClusterEnv

# torchrun's: from the rank's ClusterEnv (ClusterEnv.torchrun_vars)
RANK = "RANK"
LOCAL_RANK = "LOCAL_RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
GROUP_RANK = "GROUP_RANK"
NODE_RANK = "NODE_RANK"
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
# the strategies' own: from their worker_env hooks (strategies/*.py)
TF_CONFIG = "TF_CONFIG"
PJRT_DEVICE = "PJRT_DEVICE"
CPU_NUM_DEVICES = "CPU_NUM_DEVICES"
XLA_COORDINATOR_PORT = "XLA_COORDINATOR_PORT"
# scaletrain's own
BEACON_DIR = "SCALETRAIN_BEACON_DIR"
RESTART_COUNT = "SCALETRAIN_RESTART_COUNT"
STOP_SIGNAL = "SCALETRAIN_STOP_SIGNAL"
PROGRESS = "SCALETRAIN_PROGRESS"
HANG_RESTARTS = "SCALETRAIN_HANG_RESTARTS"  # a shell variable of slurm_script.BODY, read by launcher=slurm's ranks
PYTHON = "SCALETRAIN_PYTHON"  # a shell variable of the batch scripts (slurm_script.py), set on submission
CACHE_DIR = "SCALETRAIN_CACHE_DIR"  # where a rank caches what it measures or builds once per host (flops.py)
# the process's
PYTHONUNBUFFERED = "PYTHONUNBUFFERED"
OMP_NUM_THREADS = "OMP_NUM_THREADS"
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

TORCHRUN, STRATEGY, SCALETRAIN, PROCESS = "torchrun", "strategy", "scaletrain", "process"


class Variable(NamedTuple):
    name: str
    group: str  # TORCHRUN, STRATEGY, SCALETRAIN or PROCESS: who defines it
    meaning: str


TABLE: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(RANK, TORCHRUN, "this rank's number in the job, 0..WORLD_SIZE-1"),
        Variable(LOCAL_RANK, TORCHRUN, "this rank's number among the ranks on its host"),
        Variable(WORLD_SIZE, TORCHRUN, "how many ranks the job has"),
        Variable(LOCAL_WORLD_SIZE, TORCHRUN, "how many ranks run on this rank's host"),
        Variable(GROUP_RANK, TORCHRUN, "the number of this rank's host (node) in the job (torchrun's name)"),
        Variable(NODE_RANK, TORCHRUN, "the number of this rank's host (node) in the job"),
        Variable(MASTER_ADDR, TORCHRUN, "the address the ranks meet at (rank 0's host)"),
        Variable(MASTER_PORT, TORCHRUN, "the TCP port the ranks meet at on MASTER_ADDR"),
        Variable(
            TF_CONFIG,
            STRATEGY,
            "mirrored: TensorFlow's cluster JSON, every worker's host:port and this "
            "rank's index among them (multi-process jobs only)",
        ),
        Variable(PJRT_DEVICE, STRATEGY, "xla: the PJRT device the rank trains on (TPU, CPU or CUDA)"),
        Variable(CPU_NUM_DEVICES, STRATEGY, "xla on CPU: how many XLA CPU devices the rank drives"),
        Variable(
            XLA_COORDINATOR_PORT,
            STRATEGY,
            "xla on CUDA with several ranks: the port on MASTER_ADDR where "
            "XLA's GPU clients meet (MASTER_PORT is gloo's)",
        ),
        Variable(
            BEACON_DIR,
            SCALETRAIN,
            "the directory the rank publishes its progress beacon and dumps its stack "
            "into, for the hang watchdog; unset when the watchdog is off. Set by the local launcher, by the "
            "Ray actor (a directory on its node) and by SLURM's rank agent",
        ),
        Variable(
            RESTART_COUNT,
            SCALETRAIN,
            "how many times the job's ranks were restarted before this attempt "
            "(0 first); under SLURM, requeues plus restarts after a hang",
        ),
        Variable(
            STOP_SIGNAL,
            SCALETRAIN,
            "the signal name (e.g. USR1) on which the rank checkpoints at an agreed "
            "step and stops; unset: stopping.DEFAULT_SIGNAL",
        ),
        Variable(PROGRESS, SCALETRAIN, "'1': rank 0 draws a progress bar (the launcher's output is a terminal)"),
        Variable(
            HANG_RESTARTS,
            SCALETRAIN,
            "set by the SLURM batch script for srun: how many times it restarted "
            "hung ranks within this allocation (added into SCALETRAIN_RESTART_COUNT)",
        ),
        Variable(
            PYTHON,
            SCALETRAIN,
            "the Python the SLURM batch script runs scaletrain with (set to the "
            "submitting Python when sbatch is called; default: python on PATH)",
        ),
        Variable(PYTHONUNBUFFERED, PROCESS, "'1': the rank's output reaches the launcher's relay line by line"),
        Variable(
            OMP_NUM_THREADS,
            PROCESS,
            "the threads of the rank's math libraries: launcher.threads_per_rank, "
            "the host's cores split over its ranks, or SLURM_CPUS_PER_TASK",
        ),
        Variable(
            CUDA_VISIBLE_DEVICES, PROCESS, "the GPUs the rank may use (launcher=ray: the ones Ray gave its actor)"
        ),
    )
}


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
    from scaletrain import strategies  # not at the top: this module must stay importable with the stdlib alone

    facts = facts or Facts()
    env = dict(facts.base)
    env.update(cluster.torchrun_vars())
    env.update(strategies.of(job).worker_env(job, cluster))
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
