"""The rank environment: every environment variable a rank process can be given, with its meaning (``TABLE``).

The launchers (``scaletrain.rank.spec.build``) write these variables and the rank side (the worker, the progress
bar, the SLURM rank agent, the Ray actor) reads them through the same constants. Standard library only: the Ray
actor imports this module on every node of a cluster.
"""

from __future__ import annotations

from typing import NamedTuple

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
