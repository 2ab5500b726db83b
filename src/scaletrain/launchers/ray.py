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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrain import hardware, strategies
from scaletrain.config import Job
from scaletrain.env import ClusterEnv
from scaletrain.errors import ConfigError
from scaletrain.launchers import rank_spec
from scaletrain.launchers import ray_cluster as cluster
from scaletrain.launchers.base import Launcher, worker_argv
from scaletrain.launchers.rank_spec import RankSpec
from scaletrain.launchers.supervisor import Outcome, forward_interrupts, run_attempts
from scaletrain.strategies.plugin import Placement

log = logging.getLogger("scaletrain")

PLACEMENTS = ("auto", *cluster.STRATEGIES)


@dataclass
class Config:
    name: str = "ray"
    address: str | None = None  # None: a local Ray for this job; auto | HOST:PORT | ray://HOST:PORT
    nproc: Any = "auto"  # ranks in all; see ray_cluster.auto_nproc
    num_cpus_per_rank: float = 1.0
    num_gpus_per_rank: Any = "auto"  # auto: 1 when the cluster has GPUs, else 0
    resources_per_rank: dict[str, float] = field(default_factory=dict)  # e.g. {TPU: 4}
    placement_strategy: str = "auto"  # auto: STRICT_SPREAD for one-process-per-host strategies at nproc=auto, else PACK
    placement_timeout_s: float = 60.0
    wait_for_nodes: bool = False  # true: let an autoscaler add nodes instead of rejecting what current nodes can't hold
    connect_timeout_s: float = 30.0
    start_timeout_s: float = 300.0  # for the rank actors, runtime_env setup included
    working_dir: str | None = None  # shipped to every node, the ranks' working directory and first on their path
    runtime_env: dict[str, Any] | None = None  # Ray's runtime_env for the job: py_modules, env_vars, pip, ...
    stop_grace_s: float = 5.0
    orphan_timeout_s: float = 60.0  # a rank whose actor hears nothing from this driver this long stops (0: never)

    def job_runtime_env(self) -> dict[str, Any]:
        env = dict(self.runtime_env or {})
        if self.working_dir is not None:
            env["working_dir"] = str(Path(self.working_dir).expanduser().resolve())
        return env

    def validate(self) -> None:
        if self.working_dir is not None and not Path(self.working_dir).expanduser().is_dir():
            raise ConfigError(
                f"launcher.working_dir={self.working_dir} is not a directory; give the directory of your code."
            )
        if self.address is not None and self.address != "auto":
            cluster.split_address(self.address)
        if self.nproc != "auto" and (isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1):
            raise ConfigError(f"launcher.nproc={self.nproc!r} must be 'auto' or a whole number of at least 1.")
        gpus = self.num_gpus_per_rank
        if gpus != "auto" and (isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0):
            raise ConfigError(f"launcher.num_gpus_per_rank={gpus!r} must be 'auto' or a number of at least 0.")
        if self.num_cpus_per_rank < 0 or any(v < 0 for v in self.resources_per_rank.values()):
            raise ConfigError(
                f"launcher.num_cpus_per_rank={self.num_cpus_per_rank:g} and launcher.resources_per_rank="
                f"{self.resources_per_rank} must not be negative."
            )
        if self.placement_strategy not in PLACEMENTS:
            raise ConfigError(
                f"launcher.placement_strategy={self.placement_strategy!r} is not known; use one of: "
                f"{', '.join(PLACEMENTS)}."
            )
        for key in ("placement_timeout_s", "connect_timeout_s", "start_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"launcher.{key}={getattr(self, key)} must be positive.")
        from scaletrain.launchers.ray_group import POLL_S

        if self.orphan_timeout_s != 0 and self.orphan_timeout_s < 2 * POLL_S:
            raise ConfigError(
                f"launcher.orphan_timeout_s={self.orphan_timeout_s:g} is shorter than two of the driver's polls; give "
                f"at least {2 * POLL_S:g} s (default 60), or 0 to let ranks run without their driver."
            )
        if self.stop_grace_s < 0:
            raise ConfigError(f"launcher.stop_grace_s={self.stop_grace_s} must be 0 or more.")


class RayLauncher(Launcher):
    name = "ray"

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
        from scaletrain.launchers.ray_group import RankGroup

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
