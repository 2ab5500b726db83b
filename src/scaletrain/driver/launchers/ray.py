"""``launcher=ray``: one rank per Ray actor, the actors placed by a placement group over a Ray cluster's nodes.

Each actor runs the very worker the local launcher runs (``worker_argv``) as its child process, with the same
per-rank environment (torchrun variables from a ClusterEnv, the strategy's ``worker_env``, the restart count), so
strategies, user functions and torchrun/TF_CONFIG scripts behave exactly as they do locally. Rank 0's actor picks
the rendezvous address and port on its node, as Ray Train's backends do.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path

from scaletrain import strategies
from scaletrain.common import hardware
from scaletrain.contract.config import Job
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.driver.launchers import ray_cluster as cluster
from scaletrain.driver.launchers.base import Launcher
from scaletrain.driver.launchers.supervisor import Outcome, forward_interrupts, run_attempts
from scaletrain.launchers.ray import Config
from scaletrain.rank import spec as rank_spec
from scaletrain.rank.spec import RankSpec, worker_argv
from scaletrain.strategies.plugin import Placement

log = logging.getLogger("scaletrain")


class RayLauncher(Launcher):
    Config = Config

    @classmethod
    def sweep_point(cls, job: Job, world_size: int, largest: int) -> Config:
        """This launcher's config for a scaling sweep point of ``world_size`` ranks: the same resources per rank (the
        same "device" at every size) and the same placement; each point gets its own placement group."""
        config = job.launcher
        return dataclasses.replace(config, nproc=world_size)

    def __init__(self, job: Job) -> None:
        super().__init__(job)
        self.cfg: Config = job.launcher
        self.per_node = strategies.of(job).procs_per_node
        strategy = self.cfg.placement_strategy
        if strategy == "auto":  # one rank per host for one-process-per-host strategies sized by the cluster
            strategy = "STRICT_SPREAD" if self.per_node == 1 and self.cfg.nproc == "auto" else "PACK"
        self.group_strategy = strategy
        self.nproc: int | None = self.cfg.nproc if self.cfg.nproc != "auto" else None
        self.rank_bundle: dict[str, float] = {}
        self._connected = False
        self.interrupted = threading.Event()

    @property
    def where(self) -> str:
        return self.cfg.address or "a local Ray started for this job"

    @property
    def world_size(self) -> int:
        if self.nproc is None:
            self._size_job()
        return self.nproc

    @property
    def placement(self) -> Placement:
        """Ray places the ranks when it runs them: the hosts are known then, the processes per host when the
        strategy fixes them."""
        return Placement(nodes=None, procs_per_node=self.per_node)

    def describe(self) -> str:
        return (
            f"ray launcher at {self.where}, {self.world_size} rank(s) of {cluster.describe_bundle(self.rank_bundle)} "
            f"placed {self.group_strategy}"
        )

    def preflight(self) -> None:
        """Sizes the job to the cluster (connecting to an existing one, bounded) and rejects what can never run."""
        self._size_job()

    def release(self) -> None:
        self._disconnect()

    def _size_job(self) -> None:
        if self.cfg.address is not None and not self._connected:
            cluster.connect(self.cfg.address, self.cfg.connect_timeout_s, self.cfg.job_runtime_env(), local_cpus=0)
            self._connected = True
        nodes = cluster.live_nodes() if self._connected else cluster.this_host(hardware.cpu_count())
        gpus = cluster.gpus_per_rank(self.cfg.num_gpus_per_rank, nodes, self.per_node)
        self.rank_bundle = cluster.bundle(self.cfg.num_cpus_per_rank, gpus, self.cfg.resources_per_rank)
        if not self.rank_bundle:
            raise ConfigError(
                "launcher.num_cpus_per_rank=0 with no GPUs or resources_per_rank leaves a rank asking for nothing; "
                "give each rank at least some CPU, e.g. launcher.num_cpus_per_rank=1."
            )
        if self.nproc is None:
            self.nproc = max(1, cluster.auto_nproc(nodes, self.rank_bundle, self.per_node))
        self._check_fits(nodes)

    def _check_fits(self, nodes: list[cluster.Node]) -> None:
        if self.cfg.wait_for_nodes:
            return
        if not self._connected:
            nodes = [cluster.Node(n.node_id, n.ip, {**n.resources, "CPU": self._local_cpus()}) for n in nodes]
        cluster.check_fits(nodes, self.rank_bundle, self.nproc, self.group_strategy, self.where)

    def _local_cpus(self) -> int:
        return max(hardware.cpu_count(), int(-(-self.nproc * self.rank_bundle.get("CPU", 0) // 1)))

    def launch(self, job_file: Path) -> int:
        import ray

        try:
            if not ray.is_initialized():  # sized offline, or an earlier sweep point's launch ended the connection
                local_cpus = self._local_cpus() if self.cfg.address is None else 0
                cluster.connect(self.cfg.address, self.cfg.connect_timeout_s, self.cfg.job_runtime_env(), local_cpus)
                self._connected = True
            if len(cluster.live_nodes()) > 1:
                log.info(
                    "ranks may land on several nodes: rank 0 writes %s and checkpoint.dir=%s on its node, so put "
                    "them on storage every node shares",
                    self.job.output_dir,
                    self.job.checkpoint.dir,
                )
            with forward_interrupts(self.interrupted.set):
                return run_attempts(
                    self.job.max_restarts, lambda attempt: self._attempt(job_file, attempt), self.job.output_dir
                )
        finally:
            self._disconnect()

    def _attempt(self, job_file: Path, attempt: int) -> Outcome:
        from scaletrain.driver.launchers.ray_group import RankGroup

        self._check_fits(cluster.live_nodes())  # a node lost since the last attempt may make the job impossible
        group = RankGroup(self.rank_bundle, self.nproc, self.group_strategy, self.interrupted)
        try:
            group.reserve(self.cfg.placement_timeout_s)
            if not self.interrupted.is_set():
                group.start_actors(self.cfg.start_timeout_s)
            if self.interrupted.is_set():
                return Outcome(ok=False, interrupted=True)
            envs = cluster.cluster_envs(group.slots, group.placed)
            gpus = cluster.visible_gpus(group.slots, group.placed)
            argv = worker_argv(self.job, job_file)
            log_dir = Path(self.job.output_dir) / "logs"
            specs = [self.spec(env, argv, attempt, gpus.get(env.rank), log_dir) for env in envs]
            watch = self.job.watchdog.enabled
            pids = group.start_workers(specs, str(job_file), job_file.read_text(), watch, self.cfg.orphan_timeout_s)
            self._record(group, pids, attempt)
            log_dir.mkdir(parents=True, exist_ok=True)
            report_dir = Path(self.job.output_dir) if watch else None
            return group.supervise(log_dir, self.cfg.stop_grace_s, self.job.watchdog.hang_timeout_s, report_dir)
        finally:
            group.release()

    def spec(
        self, env: ClusterEnv, argv: list[str], attempt: int, cuda_visible: str | None, log_dir: Path | None = None
    ) -> RankSpec:
        """What the rank of ``env`` is started with: only the rank contract's variables, which its actor lays over
        its node's environment (and adds its beacon directory to); CUDA_VISIBLE_DEVICES: the GPUs Ray gave it."""
        facts = rank_spec.Facts(cuda_visible=cuda_visible, log_dir=log_dir)
        return rank_spec.build(self.job, env, argv, attempt, facts)

    def _record(self, group, pids: list[int], attempt: int) -> None:
        """Where each rank runs, in the log and in ray_ranks.json (rank, node id, host name and IP, worker pid,
        attempt)."""
        ranks = [
            {
                "rank": s.rank,
                "local_rank": s.local_rank,
                "node_rank": s.node_rank,
                "node_id": s.node_id,
                "node_ip": s.ip,
                "host": s.host,
                "pid": pid,
                "attempt": attempt,
            }
            for s, pid in zip(group.slots, pids, strict=True)
        ]
        where = ", ".join(f"rank {r['rank']} on node {r['node_id'][:8]} ({r['node_ip']})" for r in ranks)
        log.info("placed %s: %s", self.group_strategy, where)
        out = Path(self.job.output_dir) / "ray_ranks.json"
        out.write_text(json.dumps(ranks, indent=2) + "\n")

    def _disconnect(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()  # also stops the local Ray this launcher started
            self._connected = False


PLUGIN = RayLauncher
