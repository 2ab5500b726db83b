"""One rank of a ``launcher=slurm`` job: ``srun python -m scaletrain.rank.slurm_rank RUN_DIR/job.json``.

The batch script starts this once per task. It reads the job the driver already composed, checked and wrote
(``job.json``: no Hydra, no pre-flight, nothing written by N tasks at once), places the task from SLURM's variables
(``ClusterEnv``) and becomes the worker with the rank contract's variables set (``rank_spec``), so user scripts and
built-in workloads see the same environment as under ``launcher=local``. With the watchdog on, the task stays the
worker's agent (``rank_agent``); otherwise it execs the worker. A requeued run (``SLURM_RESTART_COUNT`` > 0) and a
restart after a hang resume from the run directory's latest checkpoint: the restart count travels to the worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from scaletrain import strategies
from scaletrain.common import hardware
from scaletrain.contract import beacon, config
from scaletrain.contract.config import Job
from scaletrain.contract.env import ClusterEnv, detect
from scaletrain.contract.errors import ConfigError, ScaletrainError
from scaletrain.contract.rank_env import HANG_RESTARTS
from scaletrain.rank import rank_agent, stopping
from scaletrain.rank import spec as rank_spec
from scaletrain.rank.spec import RankSpec, worker_argv

log = logging.getLogger("scaletrain")

MODULE = "scaletrain.rank.slurm_rank"  # what the batch script runs under srun


def restart_count(environ: Mapping[str, str]) -> int:
    """Requeues of the job, plus restarts of its ranks within this allocation after a hang (the batch script's)."""
    return int(environ.get("SLURM_RESTART_COUNT", "0")) + int(environ.get(HANG_RESTARTS, "0"))


def beacon_dir(job: Job, env: ClusterEnv, restarts: int) -> Path:
    """Keyed by the SLURM job id, which a requeue keeps and a later job in the same run directory does not."""
    return beacon.attempt_dir(job.output_dir, f"job_{env.job_id}", restarts)


def spec(
    job: Job, env: ClusterEnv, argv: list[str], restarts: int, environ: Mapping[str, str] = os.environ
) -> RankSpec:
    """What this task's rank is started with: the task's environment and the rank contract on top; the stop signal is
    launcher.signal; OMP_NUM_THREADS is SLURM_CPUS_PER_TASK unless set; with the watchdog on, the beacon directory of
    this attempt (the rank agent's)."""
    facts = rank_spec.Facts(
        base=environ,
        beacon_dir=beacon_dir(job, env, restarts) if job.watchdog.enabled else None,
        stop_signal=job.launcher.signal,
        default_threads=environ.get("SLURM_CPUS_PER_TASK") or None,
    )
    return rank_spec.build(job, env, argv, restarts, facts)


def run(job_file: Path, environ: Mapping[str, str] = os.environ) -> int:
    """Be this task's rank of the job in ``job_file`` until it ends; the rank's exit code."""
    job = config.load_json(job_file)
    env = detect(environ)
    restarts = restart_count(environ)
    rank = spec(job, env, worker_argv(job, job_file), restarts, environ)
    print(
        f"scaletrain: rank {env.rank} of {env.world_size} on {socket.gethostname()} (SLURM_NODEID {env.node_rank}, "
        f"SLURM_LOCALID {env.local_rank}), job {env.job_id}, restart {restarts}",
        file=sys.stderr,
        flush=True,
    )
    _warn_idle_gpus(job, env)
    sys.stdout.flush()
    if job.watchdog.enabled:  # this task stays the worker's agent, for the watchdog
        forward = (stopping.signal_number(job.launcher.signal), signal.SIGTERM)
        return rank_agent.run(rank.argv, rank.env, beacon_dir(job, env, restarts), env.rank, env.world_size,
                              job.watchdog.hang_timeout_s, forward, Path(job.output_dir))  # fmt: skip
    os.execve(rank.argv[0], rank.argv, rank.env)  # does not return: this task is now the rank's worker
    return 0  # pragma: no cover


def _warn_idle_gpus(job: Job, env: ClusterEnv) -> None:
    gpus = hardware.gpu_count()
    one_per_gpu = strategies.of(job).procs_per_node is None
    if one_per_gpu and env.local_rank == 0 and gpus > env.local_world_size:
        log.warning(
            "%d GPUs are visible on this node but it runs %d task(s): %d GPU(s) stay idle; submit with "
            "--ntasks-per-node=%d (one task per GPU)",
            gpus,
            env.local_world_size,
            gpus - env.local_world_size,
            gpus,
        )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=logging.WARNING)
    if len(args) != 1:
        print(f"usage: srun python -m {MODULE} RUN_DIR/job.json", file=sys.stderr)
        sys.exit(2)
    try:
        if not Path(args[0]).is_file():
            raise ConfigError(
                f"{args[0]} does not exist; the batch script runs this on the job.json that "
                "'python -m scaletrain launcher=slurm ...' wrote into the run directory."
            )
        code = run(Path(args[0]))
    except ScaletrainError as exc:
        print(f"scaletrain: error: {exc}", file=sys.stderr, flush=True)
        code = exc.exit_code
    sys.exit(code)


if __name__ == "__main__":
    main()
