"""``launcher=local``: worker processes on this host with the environment torchrun would give them."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from scaletrain import strategies
from scaletrain.common import hardware
from scaletrain.common.ports import PortReservation, free_ports
from scaletrain.common.watchdog import LocalProbe, Watchdog
from scaletrain.contract import beacon
from scaletrain.contract.config import Job
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.driver.launchers import rendezvous
from scaletrain.driver.launchers.base import Launcher
from scaletrain.driver.launchers.supervisor import Outcome, Supervisor, forward_interrupts, run_attempts
from scaletrain.launchers.local import Config
from scaletrain.rank import spec as rank_spec
from scaletrain.rank.spec import RankSpec, worker_argv
from scaletrain.strategies.plugin import Placement

log = logging.getLogger("scaletrain")
RENDEZVOUS_TIMEOUT_S = 300.0  # how long node 0 waits for the other nodes (the strategy's timeout_s when it has one)


def free_port(addr: str) -> int:
    return free_ports(addr, 1)[0]


def check_master_addr(cfg: Config) -> None:
    """On one host the launcher binds its ports at master_addr, so it must be this host's; else it must resolve."""
    try:
        if cfg.nnodes == 1:
            free_port(cfg.master_addr)
        else:
            socket.getaddrinfo(cfg.master_addr, cfg.master_port, type=socket.SOCK_STREAM)
    except OSError as exc:
        fix = "an address of this host, e.g. 127.0.0.1" if cfg.nnodes == 1 else "the name or IP of node 0"
        raise ConfigError(
            f"launcher.master_addr={cfg.master_addr} cannot be used ({exc.strerror or exc}); give {fix}."
        ) from None


class LocalLauncher(Launcher):
    Config = Config

    @classmethod
    def sweep_point(cls, job: Job, world_size: int, largest: int) -> Config:
        """This launcher's config for a scaling sweep point of ``world_size`` ranks on one host.

        Every point gets the threads per rank of the largest point, so each rank is the same "device" at every
        size and the sweep measures scaling rather than how the cores were shared out.
        """
        config = job.launcher
        if config.nnodes != 1:
            raise ConfigError(
                f"scaling sweeps with the local launcher run on one host, but launcher.nnodes={config.nnodes}; "
                "drop launcher.nnodes or sweep with launcher.nproc_per_node=... under -m."
            )
        threads = config.threads_per_rank
        if threads == "auto":
            threads = max(1, hardware.cpu_count() // largest)
        return dataclasses.replace(config, nproc_per_node=world_size, threads_per_rank=threads)

    def __init__(self, job: Job) -> None:
        super().__init__(job)
        n = job.launcher.nproc_per_node
        if n == "auto":
            # The strategy may say (one process per host for TensorFlow); else one per GPU or per 2 CPU cores.
            n = (
                strategies.of(job).procs_per_node
                or hardware.gpu_count()
                or hardware.default_cpu_procs(hardware.cpu_count())
            )
        self.nproc = n

    def preflight(self) -> None:
        strategy = strategies.of(self.job)
        wanted = strategy.procs_per_node
        if wanted is not None and self.nproc != wanted and strategy.procs_per_node_required:
            raise ConfigError(
                f"launcher.nproc_per_node={self.nproc} does not fit strategy {self.job.strategy.name}, which runs "
                f"{wanted} process(es) per host; use launcher.nproc_per_node=auto."
            )
        ntasks = os.environ.get("SLURM_NTASKS", "1")
        if "SLURM_STEP_ID" in os.environ and ntasks.isdigit() and int(ntasks) > 1:
            raise ConfigError(
                f"launcher=local runs inside a SLURM step of {os.environ['SLURM_NTASKS']} tasks, so every task would "
                "start its own ranks; add launcher=slurm so that each srun task is one rank."
            )
        check_master_addr(self.job.launcher)

    @property
    def world_size(self) -> int:
        return self.nproc * self.job.launcher.nnodes

    @property
    def holds_run_dir(self) -> bool:
        return self.job.launcher.node_rank == 0  # node 0's launcher holds it for every node of the job

    @property
    def placement(self) -> Placement:
        return Placement(nodes=self.job.launcher.nnodes, procs_per_node=self.nproc)

    def launch(self, job_file: Path) -> int:
        self.instance = beacon.new_instance_id()  # this launch's beacons, apart from any earlier job's in the run dir
        return run_attempts(
            self.job.max_restarts, lambda attempt: self._run_attempt(job_file, attempt), self.job.output_dir
        )

    def _run_attempt(self, job_file: Path, attempt: int) -> Outcome:
        with self.ports() as (port, addresses):
            return self._start_and_wait(job_file, attempt, port, addresses)

    @contextlib.contextmanager
    def ports(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """This attempt's master port (launcher.master_port, else a free one) and every rank's "address:port" for a
        strategy whose ranks name each other up front (TF_CONFIG). On one host they are held (PortReservation) until
        the attempt ends, so that nothing else on the host takes one while the ranks start; across several hosts the
        master port is node 0's and the workers' ports are exchanged with the other nodes' launchers (rendezvous)."""
        cfg = self.job.launcher
        if cfg.nnodes > 1:
            port = cfg.master_port or free_port(cfg.master_addr)
            yield port, self._exchange_worker_addresses()
            return
        workers = self.nproc if self.nproc > 1 else 0
        avoid = (cfg.master_port,) if cfg.master_port else ()
        with PortReservation(cfg.master_addr, workers + (0 if cfg.master_port else 1), avoid) as reserved:
            port = cfg.master_port or reserved.ports[-1]
            yield port, tuple(f"{cfg.master_addr}:{p}" for p in reserved.ports[:workers])

    def _start_and_wait(self, job_file: Path, attempt: int, port: int, addresses: tuple[str, ...]) -> Outcome:
        cfg = self.job.launcher
        supervisor = Supervisor(cfg.stop_grace_s, log_dir=Path(self.job.output_dir) / "logs")
        argv = worker_argv(self.job, job_file)
        beacons = self._beacon_dir(attempt)
        with forward_interrupts(supervisor.interrupt):
            try:
                for local_rank in range(self.nproc):
                    env = self.rank_env(local_rank, port, addresses)
                    supervisor.start_spec(self.spec(env, argv, attempt, beacons, supervisor.log_dir))
            except BaseException:
                supervisor.stop()
                raise
            if beacons is not None:
                pids = {r.rank: r.proc.pid for r in supervisor.ranks}
                supervisor.watchdog = Watchdog(LocalProbe(beacons, pids), self.job.watchdog.hang_timeout_s)
                supervisor.report_dir = Path(self.job.output_dir)
            return supervisor.wait()

    def _beacon_dir(self, attempt: int) -> Path | None:
        """A fresh directory for this launch's attempt's beacons, when the watchdog is on (an unmodified script's
        beacon says where its process is, but no steps)."""
        if not self.job.watchdog.enabled:
            return None
        directory = beacon.attempt_dir(self.job.output_dir, self.instance, attempt)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _exchange_worker_addresses(self) -> tuple[str, ...]:
        """Across several hosts: a free port per rank of this host, exchanged with the other nodes' launchers."""
        cfg = self.job.launcher
        if not strategies.of(self.job).worker_addresses:
            return ()  # torch's ranks meet at the master; a TF_CONFIG of your own names the workers itself
        ports = [p for p in free_ports("", self.nproc + 1) if p != cfg.master_port][: self.nproc]
        timeout_s = getattr(self.job.strategy, "timeout_s", RENDEZVOUS_TIMEOUT_S)
        log.info("node %d of %d: waiting for every node at %s:%d to learn the workers' addresses", cfg.node_rank,
                 cfg.nnodes, cfg.master_addr, cfg.master_port)  # fmt: skip
        workers = rendezvous.exchange(cfg.master_addr, cfg.master_port, cfg.node_rank, cfg.nnodes, ports, timeout_s)
        log.info("every node reported; the workers, in rank order: %s", " ".join(workers))
        return workers

    def rank_env(self, local_rank: int, port: int, worker_addresses: tuple[str, ...] = ()) -> ClusterEnv:
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
            worker_addresses=worker_addresses,
        )

    def spec(
        self,
        env: ClusterEnv,
        argv: list[str],
        attempt: int,
        beacons: Path | None = None,
        log_dir: Path | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> RankSpec:
        """What the rank of ``env`` is started with: this launcher's environment and the rank contract on top; its
        threads are launcher.threads_per_rank, else the cores split between this host's ranks (unless
        OMP_NUM_THREADS is set); a progress bar when the output is a terminal."""
        threads = self.job.launcher.threads_per_rank
        facts = rank_spec.Facts(
            base=environ,
            beacon_dir=beacons,
            threads=None if threads == "auto" else threads,
            default_threads=max(1, hardware.cpu_count() // self.nproc),
            progress=sys.stdout.isatty(),
            log_dir=log_dir,
        )
        return rank_spec.build(self.job, env, argv, attempt, facts)


PLUGIN = LocalLauncher
