"""``launcher=local``: worker processes on this host with the environment torchrun would give them."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaletrain import hardware, strategies
from scaletrain.config import Job
from scaletrain.env import ClusterEnv
from scaletrain.errors import ConfigError
from scaletrain.launchers.base import Launcher, worker_argv
from scaletrain.launchers.supervisor import Outcome, Supervisor, run_attempts

log = logging.getLogger("scaletrain")


@dataclass
class Config:
    name: str = "local"
    nproc_per_node: Any = "auto"  # "auto" or a count
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0  # 0: a free port on this host
    stop_grace_s: float = 5.0

    def validate(self) -> None:
        n = self.nproc_per_node
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"launcher.nproc_per_node={n!r} must be 'auto' or a whole number of at least 1.")
        if self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(
                f"launcher.node_rank={self.node_rank} must lie in 0..nnodes-1 (launcher.nnodes={self.nnodes})."
            )
        if not 0 <= self.master_port < 65536:
            raise ConfigError(f"launcher.master_port={self.master_port} is not a TCP port (0..65535).")
        if self.nnodes > 1 and self.master_port == 0:
            raise ConfigError(
                f"launcher.nnodes={self.nnodes} needs a fixed launcher.master_port that every node agrees on, "
                "e.g. launcher.master_port=29500."
            )
        if self.stop_grace_s < 0:
            raise ConfigError(f"launcher.stop_grace_s={self.stop_grace_s} must be 0 or more.")


def create(job: Job) -> LocalLauncher:
    return LocalLauncher(job)


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class LocalLauncher(Launcher):
    def __init__(self, job: Job) -> None:
        super().__init__(job)
        n = job.launcher.nproc_per_node
        if n == "auto":
            n = hardware.gpu_count() or hardware.default_cpu_procs(hardware.cpu_count())
        self.nproc = n

    @property
    def world_size(self) -> int:
        return self.nproc * self.job.launcher.nnodes

    def launch(self, job_file: Path) -> int:
        return run_attempts(self.job.max_restarts, lambda attempt: self._run_attempt(job_file, attempt))

    def _run_attempt(self, job_file: Path, attempt: int) -> Outcome:
        cfg = self.job.launcher
        port = cfg.master_port or free_port(cfg.master_addr)
        supervisor = Supervisor(cfg.stop_grace_s, log_dir=Path(self.job.output_dir) / "logs")
        argv = worker_argv(self.job, job_file)
        with _forward_interrupts(supervisor):
            try:
                for local_rank in range(self.nproc):
                    env = self.rank_env(local_rank, port)
                    supervisor.start(env.rank, argv, self._process_env(env, attempt))
            except BaseException:
                supervisor.stop()
                raise
            return supervisor.wait()

    def rank_env(self, local_rank: int, port: int) -> ClusterEnv:
        cfg = self.job.launcher
        return ClusterEnv(
            rank=cfg.node_rank * self.nproc + local_rank,
            local_rank=local_rank,
            world_size=self.world_size,
            local_world_size=self.nproc,
            node_rank=cfg.node_rank,
            num_nodes=cfg.nnodes,
            master_addr=cfg.master_addr,
            master_port=port,
            source="local",
        )

    def _process_env(self, env: ClusterEnv, attempt: int) -> dict[str, str]:
        child = dict(os.environ)
        child.update(env.torchrun_vars())
        child.update(strategies.worker_env(self.job, env))
        child["SCALETRAIN_RESTART_COUNT"] = str(attempt)
        child["PYTHONUNBUFFERED"] = "1"
        if "OMP_NUM_THREADS" not in os.environ:  # split the cores between the ranks
            child["OMP_NUM_THREADS"] = str(max(1, hardware.cpu_count() // self.nproc))
        if sys.stdout.isatty():
            child["SCALETRAIN_PROGRESS"] = "1"
        return child


@contextmanager
def _forward_interrupts(supervisor: Supervisor):
    """Ctrl-C or SIGTERM to the launcher stops every rank instead of orphaning them."""
    handler = lambda signum, frame: supervisor.interrupt()  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
