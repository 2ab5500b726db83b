"""TF_CONFIG, TensorFlow's description of a multi-worker cluster, built from a ClusterEnv and checked when handed in.

Pure functions (no TensorFlow import): every rank is a ``worker`` whose index is its rank, so worker 0 is the
chief, as in TensorFlow's MultiWorkerMirroredStrategy tutorials.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ClusterEnvError, ConfigError

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class TFCluster:
    """A validated TF_CONFIG: the worker addresses and this process's place among them."""

    workers: tuple[str, ...]
    task_type: str
    task_index: int

    def to_json(self) -> str:
        return json.dumps(
            {"cluster": {"worker": list(self.workers)}, "task": {"type": self.task_type, "index": self.task_index}}
        )


def worker_addresses(env: ClusterEnv) -> tuple[str, ...]:
    """One ``host:port`` per rank: the launcher's own list, else derived from the hosts and master_port.

    Derived ports are master_port + 1 + rank: distinct over the whole job, so ranks never collide even where two
    "hosts" share an address (several slurmd on one machine, hostnames that resolve to loopback), and the
    rendezvous port itself stays free. Ranks are assumed to be laid out host after host (SLURM's block
    distribution, the local launcher's node_rank * nproc + local_rank).
    """
    if env.worker_addresses:
        if len(env.worker_addresses) != env.world_size:
            raise ClusterEnvError(
                f"the launcher gave {len(env.worker_addresses)} worker addresses for a world size of "
                f"{env.world_size}; it must give one host:port per rank."
            )
        return env.worker_addresses
    hosts = env.hosts or ((env.master_addr,) if env.num_nodes == 1 else ())
    if not hosts or len(hosts) * env.local_world_size != env.world_size:
        raise ClusterEnvError(
            f"TF_CONFIG needs the address of each of the {env.world_size} ranks but this {env.source} environment "
            f"names {len(hosts)} host(s) with {env.local_world_size} rank(s) each; start the job with a launcher "
            "that knows every host (launcher=slurm or launcher=ray), or export TF_CONFIG yourself."
        )
    per_host = env.local_world_size
    return tuple(
        f"{host}:{env.master_port + 1 + h * per_host + i}" for h, host in enumerate(hosts) for i in range(per_host)
    )


def for_rank(env: ClusterEnv, workers: tuple[str, ...] | None = None) -> TFCluster:
    """The TF_CONFIG of ``env``'s rank: every worker of the job, and this rank's index among them."""
    return TFCluster(workers or worker_addresses(env), "worker", env.rank)


def parse(raw: str, where: str = "TF_CONFIG") -> TFCluster:
    """Validate a TF_CONFIG string; anything MultiWorkerMirroredStrategy would trip over is a ConfigError."""
    fix = f"unset it (scaletrain writes every rank's TF_CONFIG itself) or give it in the form {_EXAMPLE}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}={_short(raw)} is not JSON ({exc.msg}); {fix}.") from None
    cluster = value.get("cluster") if isinstance(value, Mapping) else None
    if not isinstance(cluster, Mapping):
        raise ConfigError(f'{where}={_short(raw)} has no "cluster" object; {fix}.')
    unsupported = sorted(set(cluster) - {"worker", "chief"})
    if unsupported:
        raise ConfigError(
            f"{where} has task type(s) {', '.join(unsupported)}, which MultiWorkerMirroredStrategy does not use; "
            f'list the processes under "worker" (and optionally one "chief").'
        )
    chief = _addresses(cluster.get("chief", []), f"{where} cluster.chief", fix)
    workers = _addresses(cluster.get("worker", []), f"{where} cluster.worker", fix)
    if len(chief) > 1:
        raise ConfigError(f"{where} lists {len(chief)} chiefs; a cluster has at most one chief.")
    everyone = chief + workers
    if not everyone:
        raise ConfigError(f"{where} lists no workers; {fix}.")
    duplicates = sorted({a for a in everyone if everyone.count(a) > 1})
    if duplicates:
        raise ConfigError(f"{where} lists {', '.join(duplicates)} more than once; give every process its own port.")
    task = value.get("task", {"type": "worker", "index": 0})
    task_type = task.get("type") if isinstance(task, Mapping) else None
    index = task.get("index") if isinstance(task, Mapping) else None
    members = {"chief": chief, "worker": workers}
    if task_type not in members or not members[task_type]:
        raise ConfigError(f"{where} task.type={task_type!r} is not a task type of its cluster; {fix}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(members[task_type]):
        raise ConfigError(
            f"{where} task.index={index!r} is out of range for {len(members[task_type])} {task_type}(s); "
            f"give an index from 0 to {len(members[task_type]) - 1}."
        )
    # The chief is task 0 of the job; the workers follow in order.
    return TFCluster(tuple(everyone), task_type, index if task_type == "chief" else index + len(chief))


def check_matches(cluster: TFCluster, env: ClusterEnv, where: str = "TF_CONFIG") -> None:
    """A TF_CONFIG given to a rank must describe this job: one worker per rank, this rank's index."""
    if len(cluster.workers) != env.world_size:
        raise ClusterEnvError(
            f"{where} lists {len(cluster.workers)} processes but the job has {env.world_size} ranks; "
            "give one address per rank or let scaletrain write TF_CONFIG."
        )
    if cluster.task_index != env.rank:
        raise ClusterEnvError(
            f"{where} says this process is task {cluster.task_index} but it is rank {env.rank}; "
            "the task index must equal the rank."
        )


def _addresses(value: object, where: str, fix: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{where} must be a list of host:port strings; {fix}.")
    for address in value:
        match = _ADDRESS.match(address)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ConfigError(f"{where} entry {address!r} is not host:port with a port in 1..65535; {fix}.")
    return tuple(value)


def _short(raw: str, limit: int = 60) -> str:
    flat = " ".join(raw.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
